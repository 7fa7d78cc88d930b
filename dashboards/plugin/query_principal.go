package plugin

import (
	"context"
	"fmt"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/apiguard/apiguard/event"
)

// eventsFilter writes " PREWHERE <condition>" on the events table that
// selects the requests of p: by client address for ip and cidr (whatever
// identifier the request also carried), by any fingerprint for fp, by the
// stored principal for key, token and sub. PREWHERE, because one
// principal is a small share of the rows: the other columns are read for
// its rows only, which 18.16 does not arrange by itself. The caller
// writes the WHERE clause after it.
func eventsFilter(b *sqlBuilder, p principalFilter) {
	b.WriteString(" PREWHERE ")
	switch p.kind {
	case event.KindIP:
		b.add("client_ip = ?", p.value)
	case event.KindCIDR:
		// client_ip_num is the address as 16 bytes, IPv4 mapped, so a
		// prefix is a range of byte strings.
		lo, hi := prefixRange(p)
		b.add("client_ip_num BETWEEN ? AND ?", lo, hi)
	case event.KindFP:
		b.add("(tls_fingerprint = ? OR tls_ja3 = ? OR header_fingerprint = ?)", p.value, p.value, p.value)
	default:
		b.add("principal_kind = ? AND principal = ?", p.kind, p.value)
	}
}

// prefixRange returns the first and last address of a cidr principal as
// 16-byte strings, IPv4 mapped, as client_ip_num stores them.
func prefixRange(p principalFilter) (lo, hi string) {
	a := p.prefix.Addr().As16()
	bits := p.prefix.Bits()
	if p.prefix.Addr().Is4() {
		bits += 96
	}
	first := a
	last := a
	for i := bits; i < 128; i++ {
		last[i/8] |= 0x80 >> (i % 8)
	}
	return string(first[:]), string(last[:])
}

// principalTimeline answers QueryTypePrincipalTimeline. The series view
// is one frame per decision of the principal's requests per bucket; the
// events view one table frame, "timeline", newest first, of the
// principal's anomalies, the actions on it and its refused requests
// (all requests with includeAllowed): time, type (anomaly, action, or
// request_<decision>), api, detail, id (anomaly, action or event id).
func (q *Queries) principalTimeline(ctx context.Context, r *queryRequest) (data.Frames, error) {
	var m PrincipalTimelineQuery
	if err := decodeModel(r, &m); err != nil {
		return nil, err
	}
	p, err := m.validate()
	if err != nil {
		return nil, err
	}
	if m.View == ViewSeries {
		b := &sqlBuilder{}
		fmt.Fprintf(b, "SELECT intDiv(toUInt32(time), %d) * %[1]d AS t, toString(decision) AS decision, count() AS v FROM %s",
			r.step, q.table("events"))
		eventsFilter(b, p)
		b.add(" WHERE 1")
		b.timeRange("date", "time", r.from, r.to)
		writeGroupBy(b, []string{"decision"})
		return q.series(ctx, r, b, "requests", []string{"decision"}, 0)
	}
	b := &sqlBuilder{}
	b.add(`SELECT time, type, api, detail, id FROM (
SELECT time, 'anomaly' AS type, api, concat(detector, ' ', toString(severity), ' score ', toString(round(score, 2)), ': ', summary) AS detail, anomaly_id AS id
FROM `+q.table("anomalies")+` WHERE principal_kind = ? AND principal = ?`, p.kind, p.value)
	b.timeRange("date", "time", r.from, r.to)
	b.add(`
UNION ALL
SELECT time, 'action' AS type, '' AS api, concat(toString(kind), if(dry_run = 1, ' (dry run)', ''), ' for ', toString(ttl_seconds), 's by ', actor, ': ', reason) AS detail, action_id AS id
FROM `+q.table("actions")+` WHERE target_kind = ? AND target = ?`, p.kind, p.value)
	b.timeRange("date", "time", r.from, r.to)
	b.add(`
UNION ALL
SELECT time, concat('request_', toString(decision)) AS type, api, concat(method, ' ', path, ' ', toString(status),
    if(check_name != '', concat(' ', check_name, ': ', reason), '')) AS detail, event_id AS id
FROM ` + q.table("events"))
	eventsFilter(b, p)
	b.add(" WHERE 1")
	b.timeRange("date", "time", r.from, r.to)
	if !m.IncludeAllowed {
		b.add(" AND decision != 'allow'")
	}
	fmt.Fprintf(b, ") ORDER BY time DESC, id LIMIT %d", m.Limit)
	f, err := q.readFrame(ctx, "timeline", b)
	if err != nil {
		return nil, err
	}
	return data.Frames{f}, nil
}
