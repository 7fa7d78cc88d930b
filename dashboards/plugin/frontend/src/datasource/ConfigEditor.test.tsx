import React from 'react';
import { fireEvent, render, screen, within } from '@testing-library/react';
import type { DataSourceSettings } from '@grafana/data';

import { ConfigEditor } from './ConfigEditor';
import type { ApiguardOptions, ApiguardSecureOptions } from './types';

type Settings = DataSourceSettings<ApiguardOptions, ApiguardSecureOptions>;

function settings(over: Partial<Settings> = {}): Settings {
  return {
    id: 1,
    uid: 'ds1',
    orgId: 1,
    name: 'apiguard',
    type: 'apiguard-datasource',
    typeName: 'apiguard',
    typeLogoUrl: '',
    access: 'proxy',
    url: '',
    user: '',
    database: '',
    basicAuth: false,
    basicAuthUser: '',
    isDefault: false,
    withCredentials: false,
    readOnly: false,
    jsonData: { natsUrl: 'nats://nats:4222', clickhouseAddr: 'ch:9000' },
    secureJsonFields: {},
    ...over,
  } as Settings;
}

describe('ConfigEditor', () => {
  test('the ClickHouse password goes to secureJsonData, never to jsonData', () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);

    const clickhouse = within(screen.getByRole('group', { name: 'ClickHouse' }));
    fireEvent.change(clickhouse.getByLabelText('Password'), { target: { value: 's3cret' } });

    const next: Settings = onOptionsChange.mock.calls[0][0];
    expect(next.secureJsonData).toEqual({ clickhousePassword: 's3cret' });
    expect(JSON.stringify(next.jsonData)).not.toContain('s3cret');
    expect(next.jsonData).toEqual({ natsUrl: 'nats://nats:4222', clickhouseAddr: 'ch:9000' });
  });

  test('addresses, database and user go to jsonData', () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);

    fireEvent.change(screen.getByLabelText('Database'), { target: { value: 'apiguard' } });
    fireEvent.change(screen.getByLabelText(/^Timeout/), { target: { value: '2s' } });

    expect(onOptionsChange.mock.calls[0][0].jsonData).toEqual({
      natsUrl: 'nats://nats:4222',
      clickhouseAddr: 'ch:9000',
      clickhouseDatabase: 'apiguard',
    });
    expect(onOptionsChange.mock.calls[1][0].jsonData).toMatchObject({ timeout: '2s' });
    expect(onOptionsChange.mock.calls[1][0].secureJsonData).toBeUndefined();
  });

  test('the NATS token is secret too', () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);

    fireEvent.change(screen.getByLabelText('Token'), { target: { value: 'tok' } });

    const next: Settings = onOptionsChange.mock.calls[0][0];
    expect(next.secureJsonData).toEqual({ natsToken: 'tok' });
    expect(JSON.stringify(next.jsonData)).not.toContain('tok');
  });

  test('a stored password shows as configured, and reset clears it', () => {
    const onOptionsChange = jest.fn();
    render(
      <ConfigEditor options={settings({ secureJsonFields: { clickhousePassword: true } })} onOptionsChange={onOptionsChange} />
    );

    expect(screen.getByDisplayValue('configured')).toBeDisabled();
    fireEvent.click(screen.getByRole('button', { name: 'Reset' }));

    const next: Settings = onOptionsChange.mock.calls[0][0];
    expect(next.secureJsonFields).toEqual({ clickhousePassword: false });
    expect(next.secureJsonData).toEqual({ clickhousePassword: '' });
  });
});
