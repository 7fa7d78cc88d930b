import React from 'react';
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

type TextOption = 'api' | 'principalValue' | 'detector' | 'anomalyId' | 'actor' | 'search';
type ChoiceOption = 'groupBy' | 'metric' | 'minSeverity' | 'orderBy' | 'view' | 'status' | 'dryRun' | 'variable' | 'source';

/** The values of each choice, as the backend names them. */
const choices: { [K in ChoiceOption]: Array<NonNullable<ApiguardQuery[K]>> } = {
  groupBy: ['api_decision', 'api', 'decision', 'total'],
  metric: ['requests', 'server_errors', 'client_errors'],
  minSeverity: ['low', 'medium', 'high', 'critical'],
  orderBy: ['risk', 'anomalies'],
  view: ['series', 'events'],
  status: ['all', 'shadow', 'zombie', 'undeclared'],
  dryRun: ['', 'only', 'exclude'],
  variable: ['api', 'principal', 'detector'],
  source: ['events', 'anomalies'],
};

const labels: Record<QueryOption, string> = {
  api: 'API',
  principalKind: 'Kind',
  principalValue: 'Principal',
  detector: 'Detector',
  groupBy: 'Group by',
  metric: 'Metric',
  minSeverity: 'Min severity',
  minScore: 'Min score',
  orderBy: 'Rank by',
  limit: 'Limit',
  anomalyId: 'Anomaly id',
  eventLimit: 'Events',
  referenceHours: 'Reference hours',
  view: 'View',
  includeAllowed: 'Allowed requests',
  status: 'APIs',
  actor: 'Actor',
  dryRun: 'Dry run',
  rawSql: 'SQL',
  variable: 'Values of',
  search: 'Search',
  source: 'From',
  live: 'Live',
};

const placeholders: Partial<Record<TextOption, string>> = {
  api: 'all APIs, or e.g. POST /orders/{id}',
  principalValue: 'e.g. 203.0.113.7',
  detector: 'any',
  actor: 'any, or e.g. grafana:alice',
};

/**
 * QueryEditor picks the query type and shows only the options that type
 * reads (queryOptions in types.ts). Changing the type drops the options the
 * new type does not read, fills its defaults and runs the query; a text or
 * number option runs the query when it loses focus, a choice at once.
 */
export function QueryEditor({ query, onChange, onRunQuery }: Props) {
  const type = query.queryType ?? QueryTypes.series;
  const set = (patch: Partial<ApiguardQuery>, run = false) => {
    onChange({ ...query, ...patch });
    if (run) {
      onRunQuery();
    }
  };

  const editor = (option: QueryOption): React.ReactElement<any> => {
    const label = labels[option];
    switch (option) {
      case 'principalKind':
        return (
          <Select
            aria-label={label}
            width={12}
            isClearable
            options={kindOptions}
            value={query.principalKind ?? null}
            onChange={(v) => set({ principalKind: v?.value }, true)}
          />
        );
      case 'rawSql':
        return (
          <TextArea
            aria-label={label}
            rows={4}
            value={query.rawSql ?? ''}
            onChange={(e) => set({ rawSql: e.currentTarget.value })}
            onBlur={onRunQuery}
          />
        );
      case 'minScore':
      case 'limit':
      case 'eventLimit':
      case 'referenceHours':
        return (
          <Input
            aria-label={label}
            type="number"
            width={10}
            min={0}
            step={option === 'minScore' ? 0.05 : 1}
            value={query[option] ?? ''}
            onChange={(e) => set({ [option]: e.currentTarget.value === '' ? undefined : Number(e.currentTarget.value) })}
            onBlur={onRunQuery}
          />
        );
      case 'includeAllowed':
      case 'live':
        return (
          <InlineSwitch
            aria-label={label}
            value={Boolean(query[option])}
            onChange={(e) => set({ [option]: e.currentTarget.checked }, true)}
          />
        );
      case 'groupBy':
      case 'metric':
      case 'minSeverity':
      case 'orderBy':
      case 'view':
      case 'status':
      case 'dryRun':
      case 'variable':
      case 'source':
        return (
          <RadioButtonGroup<string>
            options={(choices[option] as string[]).map((v) => ({ value: v, label: v === '' ? 'all' : v }))}
            value={query[option]}
            onChange={(v) => set({ [option]: v }, true)}
          />
        );
      default:
        return (
          <Input
            aria-label={label}
            width={option === 'anomalyId' ? 40 : 30}
            placeholder={placeholders[option]}
            value={query[option] ?? ''}
            onChange={(e) => set({ [option]: e.currentTarget.value })}
            onBlur={onRunQuery}
          />
        );
    }
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
          <InlineField key={option} label={labels[option]} grow={option === 'rawSql'}>
            {editor(option)}
          </InlineField>
        ))}
      </InlineFieldRow>
    </>
  );
}

