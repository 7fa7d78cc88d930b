package plugin

import (
	"context"
	"fmt"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// audit answers QueryTypeAudit from the actions table, newest first:
// time, action_id, kind, target_kind, target, ttl_seconds, expires (time
// plus TTL; the epoch for an action without one), reason, anomaly_id,
// actor, dry_run (bool) and enforce_ms (from the triggering event to the
// action, 0 when the action had no trigger).
func (q *Queries) audit(ctx context.Context, r *queryRequest) (data.Frames, error) {
	var m AuditQuery
	if err := decodeModel(r, &m); err != nil {
		return nil, err
	}
	p, err := m.validate()
	if err != nil {
		return nil, err
	}
	b := &sqlBuilder{}
	b.add(`SELECT time, action_id, toString(kind) AS kind, target_kind, target, ttl_seconds,
    if(ttl_seconds > 0, toDateTime(toUInt32(time) + ttl_seconds), toDateTime(0)) AS expires,
    reason, anomaly_id, actor, dry_run,
    if(trigger_unix_nano > 0, (time_unix_nano - trigger_unix_nano) / 1000000, 0) AS enforce_ms
FROM ` + q.table("actions") + ` WHERE 1`)
	b.timeRange("date", "time", r.from, r.to).in("toString(kind)", m.Kinds)
	if m.Actor != "" {
		b.add(" AND actor = ?", m.Actor)
	}
	if p != nil {
		b.add(" AND target_kind = ? AND target = ?", p.kind, p.value)
	}
	switch m.DryRun {
	case DryRunOnly:
		b.add(" AND dry_run = 1")
	case DryRunExclude:
		b.add(" AND dry_run = 0")
	}
	fmt.Fprintf(b, " ORDER BY time DESC, action_id LIMIT 1 BY action_id LIMIT %d", m.Limit)
	f, err := q.readFrame(ctx, "actions", b)
	if err != nil {
		return nil, err
	}
	uint8ToBool(f, "dry_run")
	return data.Frames{f}, nil
}
