import type { DataFrame } from '@grafana/data';
import { getBackendSrv, toDataQueryResponse, type FetchError } from '@grafana/runtime';
import { lastValueFrom } from 'rxjs';

import type { ApiguardQuery, PrincipalKind, QueryType } from './datasource/types';

/** The nested data source's plugin id; its backend answers queries and actions. */
export const DATASOURCE_ID = 'apiguard-datasource';

export type ActionName = 'block' | 'unblock' | 'throttle' | 'revoke' | 'allow' | 'unallow';

/** The body of POST …/resources/actions (ActionRequest in dashboards/plugin/actions.go). */
export interface ActionRequest {
  action: ActionName;
  kind: PrincipalKind;
  value: string;
  /** Go duration, e.g. "1h" ("" or "0": until removed); left out for removals (unblock, unallow). */
  ttl?: string;
  reason: string;
}

/** actionsURL is the data source's resource for actions, through Grafana's proxy to the backend. */
export function actionsURL(dsUid: string): string {
  return `/api/datasources/uid/${encodeURIComponent(dsUid)}/resources/actions`;
}

/** The backend's answer to an action (ActionResponse in actions.go). */
export interface ActionResponse {
  /** True when the enforcement bucket was changed. */
  done: boolean;
  /** What was done, or why not, in one sentence. */
  message: string;
  action?: Record<string, unknown>;
  previous?: Record<string, unknown>;
  sparedBy?: Record<string, unknown>;
}

/**
 * postAction sends one action to the backend and returns its answer. A
 * refusal (4xx, 5xx) rejects with the FetchError, whose data is the
 * backend's ActionResponse; errorMessage reads it.
 */
export async function postAction(dsUid: string, body: ActionRequest): Promise<ActionResponse> {
  const res = await lastValueFrom(
    getBackendSrv().fetch<ActionResponse>({ url: actionsURL(dsUid), method: 'POST', data: body, showErrorAlert: false })
  );
  return res.data;
}

/** errorMessage turns a failed fetch (or anything thrown) into the text to show. */
export function errorMessage(err: unknown): string {
  const e = err as Partial<FetchError<unknown>> & { message?: string };
  const data = e?.data as { message?: string; error?: string } | string | undefined;
  const detail = typeof data === 'string' ? data : data?.message || data?.error;
  const status = e?.status ? `${e.status}${e.statusText ? ' ' + e.statusText : ''}` : '';
  return [status, detail || e?.message].filter(Boolean).join(': ') || 'request failed';
}

/** A query of the Investigate page: its refId names the section it fills; model adds to the query. */
export interface SectionQuery {
  refId: string;
  queryType: QueryType;
  model?: Partial<ApiguardQuery>;
}

/** What one section got back: frames, or the error the backend gave for it. */
export interface SectionResult {
  frames: DataFrame[];
  error?: string;
}

/**
 * queryPrincipal runs the section queries for one principal over [from, to]
 * (Grafana time strings such as "now-24h") in one /api/ds/query request.
 */
export async function queryPrincipal(
  ds: { uid: string; type: string },
  sections: SectionQuery[],
  kind: PrincipalKind,
  value: string,
  from: string,
  to = 'now'
): Promise<Record<string, SectionResult>> {
  const queries = sections.map((s) => ({
    ...s.model,
    refId: s.refId,
    datasource: ds,
    queryType: s.queryType,
    principalKind: kind,
    principalValue: value,
  }));
  const res = await lastValueFrom(
    getBackendSrv().fetch({ url: '/api/ds/query', method: 'POST', data: { queries, from, to }, showErrorAlert: false })
  );
  const parsed = toDataQueryResponse(res as Parameters<typeof toDataQueryResponse>[0]);
  const out: Record<string, SectionResult> = {};
  for (const s of sections) {
    out[s.refId] = { frames: parsed.data.filter((f: DataFrame) => f.refId === s.refId) };
  }
  for (const e of parsed.errors ?? []) {
    if (e.refId && out[e.refId]) {
      out[e.refId].error = e.message;
    }
  }
  return out;
}
