import type { DataQuery, DataSourceJsonData } from '@grafana/data';

/**
 * Query types the backend's QueryData answers. The names mirror
 * QueryTypeNames in dashboards/plugin/querytypes.go (a Go test holds this list and queryOptions
 * equal to it); a name the backend does not know is refused there with a message the panel shows.
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

/**
 * The query model sent to QueryData: the union of the backend's typed models
 * (SeriesQuery, TopPrincipalsQuery, … in querytypes.go), with their JSON
 * names. Each type reads only the options listed in queryOptions; the
 * backend validates them and fills its own defaults for what is unset.
 */
export interface ApiguardQuery extends DataQuery {
  queryType?: QueryType;
  /** API route template, e.g. "POST /orders/{id}"; empty means every API. */
  api?: string;
  principalKind?: PrincipalKind;
  principalValue?: string;
  detector?: string;
  /** series: api_decision (default), api, decision or total. */
  groupBy?: 'api_decision' | 'api' | 'decision' | 'total';
  /** series: requests (default), server_errors or client_errors. */
  metric?: 'requests' | 'server_errors' | 'client_errors';
  /** anomalies: low, medium, high or critical. */
  minSeverity?: 'low' | 'medium' | 'high' | 'critical';
  /** anomalies: at or above this score, in [0,1]. */
  minScore?: number;
  /** top_principals: rank by "risk" (default) or by "anomalies". */
  orderBy?: 'risk' | 'anomalies';
  limit?: number;
  /** anomaly_detail: the anomaly's id, and how many triggering events. */
  anomalyId?: string;
  eventLimit?: number;
  /** baselines: hours before the range that the reference covers (default 24). */
  referenceHours?: number;
  /** principal_timeline: series (requests by decision) or events (anomalies, actions, refusals). */
  view?: 'series' | 'events';
  includeAllowed?: boolean;
  /** inventory: all (default), shadow, zombie or undeclared. */
  status?: 'all' | 'shadow' | 'zombie' | 'undeclared';
  /** audit: one actor ("policy:default", "grafana:<login>"), and dry-run rows: "" (all), only, exclude. */
  actor?: string;
  dryRun?: '' | 'only' | 'exclude';
  /** sql: one SELECT; $__timeFilter(column), $__timeFrom, $__timeTo and $__interval_s are expanded by the backend. */
  rawSql?: string;
  /** variable: which values to list, and a case-insensitive filter. */
  variable?: 'api' | 'principal' | 'detector';
  search?: string;
  /** variable, principals only: from the events (default) or from the anomalies (far cheaper over a day). */
  source?: 'events' | 'anomalies';
  /** anomalies, audit: answer with a live channel (stream path "anomalies" or "actions"). */
  live?: boolean;
}

/** The options one query type reads, besides queryType itself. */
export type QueryOption = Exclude<keyof ApiguardQuery, keyof DataQuery>;

export const queryOptions: Record<QueryType, QueryOption[]> = {
  series: ['api', 'groupBy', 'metric', 'limit'],
  top_principals: ['orderBy', 'limit', 'api', 'detector'],
  anomalies: ['api', 'detector', 'minSeverity', 'minScore', 'principalKind', 'principalValue', 'limit', 'live'],
  anomaly_detail: ['anomalyId', 'eventLimit'],
  baselines: ['api', 'referenceHours'],
  principal_timeline: ['principalKind', 'principalValue', 'view', 'includeAllowed', 'limit'],
  inventory: ['status'],
  audit: ['principalKind', 'principalValue', 'actor', 'dryRun', 'limit', 'live'],
  sql: ['rawSql'],
  variable: ['variable', 'principalKind', 'source', 'api', 'search', 'limit'],
  enforcement: [],
};

/** Defaults filled in when a query switches to a type: the backend's own, made visible. */
export const queryDefaults: Partial<Record<QueryType, Partial<ApiguardQuery>>> = {
  series: { groupBy: 'api_decision', metric: 'requests', limit: 100 },
  top_principals: { orderBy: 'risk', limit: 20 },
  anomalies: { limit: 100 },
  principal_timeline: { principalKind: 'ip', view: 'series' },
  inventory: { status: 'all' },
  audit: { limit: 500 },
  sql: { rawSql: 'SELECT api, count() AS requests FROM apiguard.events WHERE $__timeFilter(time) GROUP BY api ORDER BY requests DESC LIMIT 20' },
  variable: { variable: 'api' },
};

export const DEFAULT_QUERY: Partial<ApiguardQuery> = { queryType: QueryTypes.series };

/** Settings stored in the data source's jsonData (never secret); settings.go reads them. */
export interface ApiguardOptions extends DataSourceJsonData {
  natsUrl?: string;
  natsUser?: string;
  clickhouseAddr?: string;
  clickhouseDatabase?: string;
  clickhouseUser?: string;
  /** Connection and health-check timeout, a duration string ("5s"). */
  timeout?: string;
}

/** Settings stored in secureJsonData: write-only from the browser, never sent back. */
export interface ApiguardSecureOptions {
  natsPassword?: string;
  natsToken?: string;
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
