import React from 'react';
import type { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { Field, FieldSet, Input, SecretInput } from '@grafana/ui';

import type { ApiguardOptions, ApiguardSecureOptions } from './types';

type Props = DataSourcePluginOptionsEditorProps<ApiguardOptions, ApiguardSecureOptions>;

type TextOption = Exclude<keyof ApiguardOptions, keyof import('@grafana/data').DataSourceJsonData>;
type SecretOption = keyof ApiguardSecureOptions;

/**
 * ConfigEditor edits where the backend finds NATS and ClickHouse
 * (dashboards/plugin/settings.go). Addresses, users and the timeout go to
 * jsonData; passwords and the NATS token go to secureJsonData only, which
 * Grafana encrypts and never sends back: the form only learns whether each
 * is set, from secureJsonFields. Empty fields take the backend's defaults.
 */
export function ConfigEditor({ options, onOptionsChange }: Props) {
  const text = (key: TextOption, label: string, placeholder: string, description?: string) => (
    <Field label={label} description={description}>
      <Input
        id={`apiguard-${key}`}
        width={50}
        placeholder={placeholder}
        value={options.jsonData[key] ?? ''}
        onChange={(e) =>
          onOptionsChange({ ...options, jsonData: { ...options.jsonData, [key]: e.currentTarget.value } })
        }
      />
    </Field>
  );

  const secret = (key: SecretOption, label: string, description?: string) => (
    <Field label={label} description={description}>
      <SecretInput
        id={`apiguard-${key}`}
        width={50}
        isConfigured={Boolean(options.secureJsonFields?.[key])}
        value={options.secureJsonData?.[key] ?? ''}
        onChange={(e) =>
          onOptionsChange({ ...options, secureJsonData: { ...options.secureJsonData, [key]: e.currentTarget.value } })
        }
        onReset={() =>
          onOptionsChange({
            ...options,
            secureJsonFields: { ...options.secureJsonFields, [key]: false },
            secureJsonData: { ...options.secureJsonData, [key]: '' },
          })
        }
      />
    </Field>
  );

  return (
    <>
      <FieldSet label="NATS">
        {text('natsUrl', 'URL', 'nats://127.0.0.1:4222', 'The JetStream server, or a comma-separated list of a cluster’s')}
        {text('natsUser', 'User', 'none')}
        {secret('natsPassword', 'Password', 'With the user; or a token instead')}
        {secret('natsToken', 'Token')}
      </FieldSet>
      <FieldSet label="ClickHouse">
        {text('clickhouseAddr', 'Address', '127.0.0.1:9000', 'host:port of the native protocol')}
        {text('clickhouseDatabase', 'Database', 'apiguard')}
        {text('clickhouseUser', 'User', 'default', 'A read-only user is enough')}
        {secret('clickhousePassword', 'Password')}
      </FieldSet>
      <FieldSet label="Connections">
        {text('timeout', 'Timeout', '5s', 'For each connection attempt and health check')}
      </FieldSet>
    </>
  );
}
