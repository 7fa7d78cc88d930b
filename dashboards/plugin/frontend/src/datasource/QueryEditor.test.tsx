import React from 'react';
import { fireEvent, render, screen } from '@testing-library/react';

import type { ApiguardDataSource } from './datasource';
import { QueryEditor } from './QueryEditor';
import { changeQueryType, type ApiguardQuery } from './types';

function setup(query: ApiguardQuery) {
  const onChange = jest.fn();
  const onRunQuery = jest.fn();
  render(
    <QueryEditor query={query} onChange={onChange} onRunQuery={onRunQuery} datasource={{} as ApiguardDataSource} />
  );
  return { onChange, onRunQuery };
}

/** Opens the query type select and picks the option with this label. */
function pickType(label: string) {
  const input = screen.getByLabelText('Query type');
  fireEvent.keyDown(input, { key: 'ArrowDown' });
  fireEvent.click(screen.getByText(label));
}

describe('QueryEditor', () => {
  test('changing the type emits the new type with its defaults, keeps shared options and drops the others', () => {
    const { onChange, onRunQuery } = setup({
      refId: 'A',
      datasource: { type: 'apiguard-datasource', uid: 'ds1' },
      queryType: 'anomalies',
      api: 'POST /login',
      principalKind: 'ip',
      principalValue: '203.0.113.7',
      minScore: 0.8,
      live: true,
    });

    pickType('Top principals');

    expect(onChange).toHaveBeenCalledTimes(1);
    expect(onChange.mock.calls[0][0]).toEqual({
      refId: 'A',
      datasource: { type: 'apiguard-datasource', uid: 'ds1' },
      queryType: 'top_principals',
      api: 'POST /login',
      orderBy: 'risk',
      limit: 20,
    });
    expect(onRunQuery).toHaveBeenCalled();
  });

  test('switching to raw SQL emits only the SQL with its default', () => {
    const { onChange } = setup({ refId: 'B', queryType: 'series', api: 'GET /orders/{id}' });

    pickType('Raw SQL');

    const q = onChange.mock.calls[0][0];
    expect(q.queryType).toBe('sql');
    expect(q.refId).toBe('B');
    expect(q.rawSql).toMatch(/\$__timeFilter\(time\)/);
    expect(q).not.toHaveProperty('api');
  });

  test('shows only the options the type reads, and edits them into the model', () => {
    const { onChange } = setup({ refId: 'A', queryType: 'principal_timeline', principalKind: 'ip' });

    expect(screen.getByLabelText('Principal')).toBeInTheDocument();
    expect(screen.queryByLabelText('API')).not.toBeInTheDocument();
    expect(screen.queryByLabelText('SQL')).not.toBeInTheDocument();

    fireEvent.change(screen.getByLabelText('Principal'), { target: { value: 'key-42' } });
    expect(onChange).toHaveBeenLastCalledWith({
      refId: 'A',
      queryType: 'principal_timeline',
      principalKind: 'ip',
      principalValue: 'key-42',
    });
  });

  test('the live switch sets live on anomaly queries', () => {
    const { onChange, onRunQuery } = setup({ refId: 'A', queryType: 'anomalies' });

    fireEvent.click(screen.getByLabelText('Live'));

    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'anomalies', live: true });
    expect(onRunQuery).toHaveBeenCalled();
  });
});

describe('changeQueryType', () => {
  test('a value the user set wins over the new type default', () => {
    expect(changeQueryType({ refId: 'A', queryType: 'anomalies', limit: 5 }, 'audit')).toEqual({
      refId: 'A',
      queryType: 'audit',
      limit: 5,
    });
  });
});
