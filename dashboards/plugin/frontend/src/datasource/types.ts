import type { DataQuery, DataSourceJsonData } from '@grafana/data';

/**
 * Query types the backend's QueryData answers. The names mirror
 * dashboards/plugin/querytypes.go; a name the backend does not know is
 * refused there with a message the panel shows.
 */
export const QueryTypes = {
  series: 'series',
  topPrincipals: 'top_principals',
  anomalies: 'anomalies',
  anomalyDetail: 'anomaly_detail',
  baselines: 'baselines',
  principalTimeline: 'principal_timeline',
  inventory: 'inventory',
  audit: 'audit',
  sql: 'sql',
  variable: 'variable',
  enforcement: 'enforcement',
} as const;

export type QueryType = (typeof QueryTypes)[keyof typeof QueryTypes];

/** Principal kinds, as the enforcement keys name them (event/ and DESIGN.md). */
export const PrincipalKinds = ['ip', 'cidr', 'key', 'token', 'sub', 'fp'] as const;
export type PrincipalKind = (typeof PrincipalKinds)[number];

/** The query model sent to QueryData. Each type reads only the options listed in queryOptions. */
export interface ApiguardQuery extends DataQuery {
  queryType?: QueryType;
  /** API route template, e.g. "POST /orders/{id}"; empty means every API. */
  api?: string;
  principalKind?: PrincipalKind;
  principalValue?: string;
  detector?: string;
  /** Anomalies at or above this score, in [0,1]. */
  minScore?: number;
  /** top_principals: rank by "risk" or by "anomalies". */
  orderBy?: 'risk' | 'anomalies';
  limit?: number;
  /** anomaly_detail: the anomaly's id. */
  anomalyId?: string;
  /** inventory: "shadow", "zombie" or "all". */
  status?: 'all' | 'shadow' | 'zombie';
  /** sql: a single SELECT; $__timeFilter(column) and $__interval_s are expanded by the backend. */
  rawSql?: string;
  /** variable: which values to list. */
  variable?: 'api' | 'principal' | 'detector';
  /** anomalies, audit: answer with a live channel (stream path "anomalies" or "actions"). */
  live?: boolean;
}

/** The options one query type reads, besides queryType itself. */
export type QueryOption = Exclude<keyof ApiguardQuery, keyof DataQuery>;

export const queryOptions: Record<QueryType, QueryOption[]> = {
  series: ['api'],
  top_principals: ['api', 'orderBy', 'limit'],
  anomalies: ['api', 'principalKind', 'principalValue', 'detector', 'minScore', 'limit', 'live'],
  anomaly_detail: ['anomalyId'],
  baselines: ['api'],
  principal_timeline: ['principalKind', 'principalValue'],
  inventory: ['status'],
  audit: ['principalKind', 'principalValue', 'limit', 'live'],
  sql: ['rawSql'],
  variable: ['variable', 'api'],
  enforcement: ['principalKind'],
};

/** Defaults filled in when a query switches to a type. */
export const queryDefaults: Partial<Record<QueryType, Partial<ApiguardQuery>>> = {
  top_principals: { orderBy: 'risk', limit: 20 },
  anomalies: { limit: 100 },
  principal_timeline: { principalKind: 'ip' },
  inventory: { status: 'all' },
  audit: { limit: 100 },
  sql: { rawSql: 'SELECT api, count() AS requests FROM events WHERE $__timeFilter(time) GROUP BY api ORDER BY requests DESC LIMIT 20' },
  variable: { variable: 'api' },
};

export const DEFAULT_QUERY: Partial<ApiguardQuery> = { queryType: QueryTypes.series };

/** Settings stored in the data source's jsonData (never secret). */
export interface ApiguardOptions extends DataSourceJsonData {
  natsUrl?: string;
  clickhouseAddr?: string;
  clickhouseDatabase?: string;
  clickhouseUser?: string;
}

/** Settings stored in secureJsonData: write-only from the browser, never sent back. */
export interface ApiguardSecureOptions {
  clickhousePassword?: string;
}

const allOptions = new Set<QueryOption>(Object.values(queryOptions).flat());

/**
 * changeQueryType returns the query switched to type: options the new type
 * reads are kept, the others dropped, and the type's defaults fill what is
 * unset. refId, datasource and the other DataQuery fields are kept as they are.
 */
export function changeQueryType(query: ApiguardQuery, type: QueryType): ApiguardQuery {
  const next: ApiguardQuery = { ...queryDefaults[type], ...query, queryType: type };
  for (const option of allOptions) {
    if (!queryOptions[type].includes(option)) {
      delete next[option];
    }
  }
  return next;
}
