import React from 'react';
import { fireEvent, render, screen, within } from '@testing-library/react';
import { getBackendSrv, locationService } from '@grafana/runtime';
import { of, throwError } from 'rxjs';

import { Investigate } from './Investigate';

jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getBackendSrv: jest.fn(),
  getDataSourceSrv: () => ({
    getList: () => [{ uid: 'ds1', name: 'apiguard', type: 'apiguard-datasource' }],
  }),
  locationService: { getSearchObject: jest.fn(() => ({})) },
}));

const fetch = jest.fn();

/** A data-plane frame as /api/ds/query returns it. */
function frame(refId: string, fields: Array<{ name: string; type: string; values: unknown[] }>) {
  return {
    schema: { refId, fields: fields.map(({ name, type }) => ({ name, type })) },
    data: { values: fields.map((f) => f.values) },
  };
}

const queryAnswer = {
  data: {
    results: {
      timeline: {
        status: 200,
        frames: [
          frame('timeline', [
            { name: 'time', type: 'time', values: [1700000000000] },
            { name: 'what', type: 'string', values: ['anomaly credential_stuffing'] },
          ]),
        ],
      },
      anomalies: {
        status: 200,
        frames: [
          frame('anomalies', [
            { name: 'detector', type: 'string', values: ['credential_stuffing'] },
            { name: 'summary', type: 'string', values: ['login failures 40x the baseline'] },
          ]),
        ],
      },
      actions: { status: 400, error: 'audit query: principalValue: "x" is not an IP address' },
    },
  },
};

beforeEach(() => {
  fetch.mockReset();
  (getBackendSrv as jest.Mock).mockReturnValue({ fetch });
  (locationService.getSearchObject as jest.Mock).mockReturnValue({});
});

function fill(label: string, value: string) {
  fireEvent.change(screen.getByLabelText(label), { target: { value } });
}

describe('Investigate', () => {
  test('block posts the action with kind, value, TTL and reason, and shows the answer', async () => {
    fetch.mockImplementation((req: { url: string }) =>
      req.url === '/api/ds/query'
        ? of(queryAnswer)
        : of({ status: 200, data: { done: true, message: 'blocked ip 203.0.113.7 for 1h', action: { id: 'a1' } } })
    );
    render(<Investigate />);

    fill('Principal', ' 203.0.113.7 ');
    fill('TTL', '1h');
    fill('Reason', 'credential stuffing');
    fireEvent.click(screen.getByRole('button', { name: 'block' }));

    expect(await screen.findByText('blocked ip 203.0.113.7 for 1h')).toBeInTheDocument();
    expect(fetch).toHaveBeenCalledWith({
      url: '/api/datasources/uid/ds1/resources/actions',
      method: 'POST',
      showErrorAlert: false,
      data: { action: 'block', kind: 'ip', value: '203.0.113.7', ttl: '1h', reason: 'credential stuffing' },
    });
    expect(screen.getByText(/"id": "a1"/)).toBeInTheDocument();
  });

  test('unblock of a key sends no TTL', async () => {
    fetch.mockImplementation((req: { url: string }) =>
      req.url === '/api/ds/query' ? of(queryAnswer) : of({ status: 200, data: { done: true, message: 'unblocked' } })
    );
    render(<Investigate />);

    fireEvent.click(screen.getByLabelText('key'));
    fill('Principal', 'key-42');
    fill('Reason', 'false positive');
    fireEvent.click(screen.getByRole('button', { name: 'unblock' }));

    await screen.findByText('unblocked');
    expect(fetch.mock.calls[0][0].data).toEqual({
      action: 'unblock',
      kind: 'key',
      value: 'key-42',
      reason: 'false positive',
    });
  });

  test('a refusal shows the status and the backend message', async () => {
    fetch.mockReturnValue(
      throwError(() => ({
        status: 403,
        statusText: 'Forbidden',
        data: { done: false, message: 'only Editors and Admins act; this user has role Viewer' },
      }))
    );
    render(<Investigate />);

    fill('Principal', '203.0.113.7');
    fill('Reason', 'test');
    fireEvent.click(screen.getByRole('button', { name: 'allow' }));

    expect(await screen.findByText('allow ip 203.0.113.7 refused')).toBeInTheDocument();
    expect(
      screen.getByText('403 Forbidden: only Editors and Admins act; this user has role Viewer')
    ).toBeInTheDocument();
  });

  test('an answer that changed nothing is shown as a warning with its message', async () => {
    fetch.mockImplementation((req: { url: string }) =>
      req.url === '/api/ds/query'
        ? of(queryAnswer)
        : of({ status: 200, data: { done: false, message: 'spared by an allow entry', sparedBy: { kind: 'ip' } } })
    );
    render(<Investigate />);

    fill('Principal', '203.0.113.7');
    fill('Reason', 'test');
    fireEvent.click(screen.getByRole('button', { name: 'block' }));

    expect(await screen.findByText('spared by an allow entry')).toBeInTheDocument();
  });

  test('the act buttons wait for a principal and a reason', () => {
    render(<Investigate />);
    expect(screen.getByRole('button', { name: 'block' })).toBeDisabled();
    fill('Principal', '203.0.113.7');
    expect(screen.getByRole('button', { name: 'block' })).toBeDisabled();
    fill('Reason', 'r');
    expect(screen.getByRole('button', { name: 'block' })).toBeEnabled();
  });

  test('investigating queries timeline, anomalies and actions for the principal and shows each', async () => {
    fetch.mockReturnValue(of(queryAnswer));
    render(<Investigate />);

    fireEvent.click(screen.getByLabelText('sub'));
    fill('Principal', 'alice');
    fireEvent.click(screen.getByRole('button', { name: /investigate/i }));

    const anomalies = await screen.findByRole('region', { name: 'Anomalies' });
    expect(within(anomalies).getByText('login failures 40x the baseline')).toBeInTheDocument();
    const timeline = screen.getByRole('region', { name: 'Timeline' });
    expect(within(timeline).getByText('anomaly credential_stuffing')).toBeInTheDocument();
    const actions = screen.getByRole('region', { name: 'Actions taken' });
    expect(within(actions).getByText(/is not an IP address/)).toBeInTheDocument();

    const req = fetch.mock.calls[0][0];
    expect(req.url).toBe('/api/ds/query');
    expect(req.data.from).toBe('now-24h');
    expect(req.data.queries).toEqual([
      expect.objectContaining({ refId: 'timeline', queryType: 'principal_timeline', view: 'events', principalKind: 'sub', principalValue: 'alice' }),
      expect.objectContaining({ refId: 'anomalies', queryType: 'anomalies', principalKind: 'sub', principalValue: 'alice' }),
      expect.objectContaining({ refId: 'actions', queryType: 'audit', principalKind: 'sub', principalValue: 'alice' }),
    ]);
  });

  test('a principal in the URL is investigated at once', async () => {
    (locationService.getSearchObject as jest.Mock).mockReturnValue({ kind: 'key', value: 'key-7' });
    fetch.mockReturnValue(of(queryAnswer));
    render(<Investigate />);

    await screen.findByRole('region', { name: 'Anomalies' });
    expect(fetch.mock.calls[0][0].data.queries[0]).toMatchObject({ principalKind: 'key', principalValue: 'key-7' });
  });
});
