import React, { type ChangeEvent } from 'react';
import type { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { Field, FieldSet, Input, SecretInput } from '@grafana/ui';

import type { ApiguardOptions, ApiguardSecureOptions } from './types';

type Props = DataSourcePluginOptionsEditorProps<ApiguardOptions, ApiguardSecureOptions>;

type TextOption = 'natsUrl' | 'clickhouseAddr' | 'clickhouseDatabase' | 'clickhouseUser';

/**
 * ConfigEditor edits where the backend finds NATS and ClickHouse. Addresses
 * and the user go to jsonData; the ClickHouse password goes to
 * secureJsonData only, which Grafana encrypts and never sends back (the form
 * only learns whether it is set, from secureJsonFields).
 */
export function ConfigEditor({ options, onOptionsChange }: Props) {
  const jsonData = options.jsonData;
  const passwordSet = Boolean(options.secureJsonFields?.clickhousePassword);

  const setText = (key: TextOption) => (e: ChangeEvent<HTMLInputElement>) =>
    onOptionsChange({ ...options, jsonData: { ...jsonData, [key]: e.target.value } });

  const setPassword = (e: ChangeEvent<HTMLInputElement>) =>
    onOptionsChange({ ...options, secureJsonData: { ...options.secureJsonData, clickhousePassword: e.target.value } });

  const resetPassword = () =>
    onOptionsChange({
      ...options,
      secureJsonFields: { ...options.secureJsonFields, clickhousePassword: false },
      secureJsonData: { ...options.secureJsonData, clickhousePassword: '' },
    });

  return (
    <>
      <FieldSet label="NATS">
        <Field label="URL" description="The JetStream cluster apiguard publishes to, e.g. nats://nats:4222">
          <Input id="nats-url" width={50} value={jsonData.natsUrl ?? ''} placeholder="nats://localhost:4222" onChange={setText('natsUrl')} />
        </Field>
      </FieldSet>
      <FieldSet label="ClickHouse">
        <Field label="Address" description="host:port of the native protocol">
          <Input id="clickhouse-addr" width={50} value={jsonData.clickhouseAddr ?? ''} placeholder="localhost:9000" onChange={setText('clickhouseAddr')} />
        </Field>
        <Field label="Database">
          <Input id="clickhouse-database" width={50} value={jsonData.clickhouseDatabase ?? ''} placeholder="apiguard" onChange={setText('clickhouseDatabase')} />
        </Field>
        <Field label="User">
          <Input id="clickhouse-user" width={50} value={jsonData.clickhouseUser ?? ''} placeholder="default" onChange={setText('clickhouseUser')} />
        </Field>
        <Field label="Password">
          <SecretInput
            id="clickhouse-password"
            width={50}
            isConfigured={passwordSet}
            value={options.secureJsonData?.clickhousePassword ?? ''}
            onChange={setPassword}
            onReset={resetPassword}
          />
        </Field>
      </FieldSet>
    </>
  );
}
