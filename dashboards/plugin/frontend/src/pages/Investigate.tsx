import React, { useCallback, useEffect, useMemo, useState } from 'react';
import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import { getDataSourceSrv, locationService } from '@grafana/runtime';
import { Alert, Button, Field, Input, RadioButtonGroup, Select, Stack, useStyles2 } from '@grafana/ui';

import {
  DATASOURCE_ID,
  errorMessage,
  postAction,
  queryPrincipal,
  type ActionName,
  type SectionQuery,
  type SectionResult,
} from '../api';
import { FrameTable } from '../components/FrameTable';
import { PrincipalKinds, QueryTypes, type PrincipalKind } from '../datasource/types';

/** The page's sections, each one query of the data source for the principal. */
const sections: Array<SectionQuery & { title: string }> = [
  { refId: 'timeline', queryType: QueryTypes.principalTimeline, model: { view: 'events' }, title: 'Timeline' },
  { refId: 'anomalies', queryType: QueryTypes.anomalies, title: 'Anomalies' },
  { refId: 'actions', queryType: QueryTypes.audit, title: 'Actions taken' },
];

const ranges = [
  { value: 'now-1h', label: '1h' },
  { value: 'now-24h', label: '24h' },
  { value: 'now-7d', label: '7d' },
  { value: 'now-30d', label: '30d' },
];

const buttons: Array<{ action: ActionName; variant: 'destructive' | 'secondary' | 'primary' }> = [
  { action: 'block', variant: 'destructive' },
  { action: 'unblock', variant: 'secondary' },
  { action: 'allow', variant: 'primary' },
];

type Answer = { severity: 'success' | 'warning' | 'error'; title: string; body?: string };

function isKind(s: unknown): s is PrincipalKind {
  return typeof s === 'string' && (PrincipalKinds as readonly string[]).includes(s);
}

/**
 * Investigate shows one principal (kind and value): its timeline, its
 * anomalies with their explanations and the actions taken on it, and acts on
 * it (block, unblock, allow) through the data source's actions resource. The
 * URL's ?kind=…&value=… opens a principal directly, for data links from
 * dashboards. The backend decides who may act; its answer, or refusal, is
 * shown as it comes.
 */
export function Investigate() {
  const styles = useStyles2(getStyles);
  const sources = useMemo(() => getDataSourceSrv().getList({ pluginId: DATASOURCE_ID }), []);
  const initial = useMemo(() => locationService.getSearchObject(), []);

  const [dsUid, setDsUid] = useState<string | undefined>(sources[0]?.uid);
  const [kind, setKind] = useState<PrincipalKind>(isKind(initial.kind) ? initial.kind : 'ip');
  const [value, setValue] = useState(typeof initial.value === 'string' ? initial.value : '');
  const [from, setFrom] = useState('now-24h');
  const [results, setResults] = useState<Record<string, SectionResult>>();
  const [queryError, setQueryError] = useState<string>();
  const [loading, setLoading] = useState(false);

  const [ttl, setTtl] = useState('1h');
  const [reason, setReason] = useState('');
  const [acting, setActing] = useState(false);
  const [answer, setAnswer] = useState<Answer>();

  const ds = sources.find((s) => s.uid === dsUid);
  const principal = value.trim();

  const run = useCallback(async () => {
    if (!ds || !principal) {
      return;
    }
    setLoading(true);
    setQueryError(undefined);
    try {
      setResults(await queryPrincipal({ uid: ds.uid, type: ds.type }, sections, kind, principal, from));
    } catch (err) {
      setResults(undefined);
      setQueryError(errorMessage(err));
    } finally {
      setLoading(false);
    }
  }, [ds, kind, principal, from]);

  // A principal given in the URL is shown at once, on the first render
  // only: later edits wait for the Investigate button.
  useEffect(() => {
    if (initial.value) {
      run();
    }
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  const act = async (action: ActionName) => {
    if (!ds) {
      return;
    }
    setActing(true);
    setAnswer(undefined);
    const body = {
      action,
      kind,
      value: principal,
      ...(action === 'unblock' ? {} : { ttl: ttl.trim() }),
      reason: reason.trim(),
    };
    try {
      const res = await postAction(ds.uid, body);
      const { done, message, ...detail } = res;
      setAnswer({
        severity: done ? 'success' : 'warning',
        title: message || `${action} ${kind} ${principal}: ${done ? 'done' : 'not done'}`,
        body: Object.keys(detail).length > 0 ? JSON.stringify(detail, null, 2) : undefined,
      });
      run();
    } catch (err) {
      setAnswer({ severity: 'error', title: `${action} ${kind} ${principal} refused`, body: errorMessage(err) });
    } finally {
      setActing(false);
    }
  };

  if (sources.length === 0) {
    return (
      <Alert severity="info" title="No apiguard data source">
        Add a data source of type apiguard under Connections, then come back here.
      </Alert>
    );
  }

  return (
    <div>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          run();
        }}
      >
        <Stack gap={2} alignItems="flex-end" wrap="wrap">
          {sources.length > 1 && (
            <Field label="Data source">
              <Select
                aria-label="Data source"
                width={24}
                options={sources.map((s) => ({ value: s.uid, label: s.name }))}
                value={dsUid}
                onChange={(v) => setDsUid(v.value)}
              />
            </Field>
          )}
          <Field label="Kind">
            <RadioButtonGroup
              options={PrincipalKinds.map((k) => ({ value: k, label: k }))}
              value={kind}
              onChange={setKind}
            />
          </Field>
          <Field label="Principal">
            <Input
              aria-label="Principal"
              width={36}
              placeholder="203.0.113.7, a key id, a subject…"
              value={value}
              onChange={(e) => setValue(e.currentTarget.value)}
            />
          </Field>
          <Field label="Last">
            <RadioButtonGroup options={ranges} value={from} onChange={setFrom} />
          </Field>
          <Field>
            <Button type="submit" icon="search" disabled={!principal || loading}>
              Investigate
            </Button>
          </Field>
        </Stack>
      </form>

      <div className={styles.act}>
        <Stack gap={2} alignItems="flex-end" wrap="wrap">
          <Field label="TTL" description="block and allow expire after this; 0 keeps them">
            <Input aria-label="TTL" width={10} value={ttl} onChange={(e) => setTtl(e.currentTarget.value)} />
          </Field>
          <Field label="Reason" description="recorded in the audit">
            <Input aria-label="Reason" width={48} value={reason} onChange={(e) => setReason(e.currentTarget.value)} />
          </Field>
          <Field>
            <Stack gap={1}>
              {buttons.map((b) => (
                <Button
                  key={b.action}
                  variant={b.variant}
                  disabled={!principal || !reason.trim() || acting}
                  onClick={() => act(b.action)}
                >
                  {b.action}
                </Button>
              ))}
            </Stack>
          </Field>
        </Stack>
        {answer && (
          <Alert severity={answer.severity} title={answer.title} onRemove={() => setAnswer(undefined)}>
            {answer.body && <pre className={styles.answer}>{answer.body}</pre>}
          </Alert>
        )}
      </div>

      {queryError && <Alert severity="error" title="Query failed">{queryError}</Alert>}
      {results &&
        sections.map((s) => {
          const r = results[s.refId];
          return (
            <section key={s.refId} aria-label={s.title}>
              <h3>{s.title}</h3>
              {r?.error && <Alert severity="error" title={`${s.title} failed`}>{r.error}</Alert>}
              {!r?.error && !r?.frames.some((f) => f.length > 0) && <p>Nothing in this time range.</p>}
              {r?.frames.filter((f) => f.length > 0).map((f, i) => <FrameTable key={i} frame={f} />)}
            </section>
          );
        })}
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  act: css({
    margin: theme.spacing(2, 0),
    padding: theme.spacing(2),
    border: `1px solid ${theme.colors.border.weak}`,
    borderRadius: theme.shape.radius.default,
  }),
  answer: css({ margin: 0, whiteSpace: 'pre-wrap' }),
});
