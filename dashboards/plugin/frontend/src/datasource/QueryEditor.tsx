import React, { type ChangeEvent } from 'react';
import type { QueryEditorProps, SelectableValue } from '@grafana/data';
import { InlineField, InlineFieldRow, InlineSwitch, Input, RadioButtonGroup, Select, TextArea } from '@grafana/ui';

import type { ApiguardDataSource } from './datasource';
import {
  changeQueryType,
  PrincipalKinds,
  queryOptions,
  QueryTypes,
  type ApiguardOptions,
  type ApiguardQuery,
  type QueryOption,
  type QueryType,
} from './types';

type Props = QueryEditorProps<ApiguardDataSource, ApiguardQuery, ApiguardOptions>;

const typeLabels: Record<QueryType, string> = {
  series: 'Requests and decisions by API',
  top_principals: 'Top principals',
  anomalies: 'Anomalies',
  anomaly_detail: 'Anomaly detail',
  baselines: 'Baselines against observed',
  principal_timeline: 'Principal timeline',
  inventory: 'API inventory (shadow, zombie)',
  audit: 'Audit of actions',
  sql: 'Raw SQL',
  variable: 'Variable values',
  enforcement: 'Active enforcement entries',
};

const typeOptions: Array<SelectableValue<QueryType>> = Object.values(QueryTypes).map((value) => ({
  value,
  label: typeLabels[value],
}));

const kindOptions = PrincipalKinds.map((value) => ({ value, label: value }));

function choices<K extends 'orderBy' | 'status' | 'variable'>(
  ...values: Array<NonNullable<ApiguardQuery[K]>>
): Array<SelectableValue<NonNullable<ApiguardQuery[K]>>> {
  return values.map((value) => ({ value, label: value === 'api' ? 'API' : value }));
}

const orderByOptions = choices<'orderBy'>('risk', 'anomalies');
const statusOptions = choices<'status'>('all', 'shadow', 'zombie');
const variableOptions = choices<'variable'>('api', 'principal', 'detector');

/**
 * QueryEditor picks the query type and shows only the options that type
 * reads (queryOptions in types.ts). Changing the type drops the options the
 * new type does not read and runs the query.
 */
export function QueryEditor({ query, onChange, onRunQuery }: Props) {
  const type = query.queryType ?? QueryTypes.series;
  const set = (patch: Partial<ApiguardQuery>, run = false) => {
    onChange({ ...query, ...patch });
    if (run) {
      onRunQuery();
    }
  };
  const text = (key: 'api' | 'principalValue' | 'detector' | 'anomalyId') => ({
    value: query[key] ?? '',
    onChange: (e: ChangeEvent<HTMLInputElement>) => set({ [key]: e.target.value }),
    onBlur: onRunQuery,
  });
  const num = (key: 'minScore' | 'limit') => ({
    type: 'number',
    value: query[key] ?? '',
    onChange: (e: ChangeEvent<HTMLInputElement>) =>
      set({ [key]: e.target.value === '' ? undefined : Number(e.target.value) }),
    onBlur: onRunQuery,
  });

  const editors: Record<QueryOption, React.ReactNode> = {
    api: (
      <InlineField label="API" tooltip="Route template, e.g. POST /orders/{id}; empty for all">
        <Input aria-label="API" width={30} placeholder="all APIs" {...text('api')} />
      </InlineField>
    ),
    principalKind: (
      <InlineField label="Kind">
        <Select
          aria-label="Principal kind"
          width={12}
          isClearable
          options={kindOptions}
          value={query.principalKind ?? null}
          onChange={(v) => set({ principalKind: v?.value }, true)}
        />
      </InlineField>
    ),
    principalValue: (
      <InlineField label="Principal">
        <Input aria-label="Principal" width={30} placeholder="e.g. 203.0.113.7" {...text('principalValue')} />
      </InlineField>
    ),
    detector: (
      <InlineField label="Detector">
        <Input aria-label="Detector" width={20} placeholder="any" {...text('detector')} />
      </InlineField>
    ),
    minScore: (
      <InlineField label="Min score">
        <Input aria-label="Min score" width={10} min={0} max={1} step={0.05} {...num('minScore')} />
      </InlineField>
    ),
    orderBy: (
      <InlineField label="Rank by">
        <RadioButtonGroup
          options={orderByOptions}
          value={query.orderBy}
          onChange={(v) => set({ orderBy: v }, true)}
        />
      </InlineField>
    ),
    limit: (
      <InlineField label="Limit">
        <Input aria-label="Limit" width={10} min={1} {...num('limit')} />
      </InlineField>
    ),
    anomalyId: (
      <InlineField label="Anomaly id">
        <Input aria-label="Anomaly id" width={40} {...text('anomalyId')} />
      </InlineField>
    ),
    status: (
      <InlineField label="APIs">
        <RadioButtonGroup
          options={statusOptions}
          value={query.status}
          onChange={(v) => set({ status: v }, true)}
        />
      </InlineField>
    ),
    rawSql: (
      <InlineField label="SQL" grow tooltip="One SELECT; $__timeFilter(column) and $__interval_s are expanded">
        <TextArea
          aria-label="SQL"
          rows={4}
          value={query.rawSql ?? ''}
          onChange={(e) => set({ rawSql: e.currentTarget.value })}
          onBlur={onRunQuery}
        />
      </InlineField>
    ),
    variable: (
      <InlineField label="Values of">
        <RadioButtonGroup
          options={variableOptions}
          value={query.variable}
          onChange={(v) => set({ variable: v }, true)}
        />
      </InlineField>
    ),
    live: (
      <InlineField label="Live" tooltip="Stream new rows as they reach NATS">
        <InlineSwitch aria-label="Live" value={Boolean(query.live)} onChange={(e) => set({ live: e.currentTarget.checked }, true)} />
      </InlineField>
    ),
  };

  return (
    <>
      <InlineFieldRow>
        <InlineField label="Query type">
          <Select
            inputId="apiguard-query-type"
            aria-label="Query type"
            width={36}
            options={typeOptions}
            value={type}
            onChange={(v) => {
              onChange(changeQueryType(query, v.value!));
              onRunQuery();
            }}
          />
        </InlineField>
      </InlineFieldRow>
      <InlineFieldRow>
        {queryOptions[type].map((option) => (
          <React.Fragment key={option}>{editors[option]}</React.Fragment>
        ))}
      </InlineFieldRow>
    </>
  );
}
