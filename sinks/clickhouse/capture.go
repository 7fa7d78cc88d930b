package clickhouse

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// EventQuery selects stored events for a capture (`apiguard replay
// capture --from clickhouse`), for ranges older than the stream keeps.
type EventQuery struct {
	// Since ≤ event time < Until; a zero Until has no bound.
	Since, Until time.Time
	// API, if set, keeps one API (route template, method included).
	API string
	// PrincipalKind and Principal, if set, keep one principal
	// (event.PrincipalOf).
	PrincipalKind, Principal string
}

// captureColumns are the events columns ReadEvents reads, in scan order.
const captureColumns = "time_unix_nano, event_id, proxy, api, method, host, path, query_names, status, request_bytes, " +
	"response_bytes, duration_us, upstream_us, client_ip, forwarded_for, user_agent, tls_fingerprint, header_fingerprint, " +
	"tls_ja3, accept_language, account, api_key_id, token_id, token_hash, subject, session, origin, referer, " +
	"toString(decision), check_name, reason, toString(auth), stream_partition"

// ReadEvents reads the stored events that q selects, in event-time order
// (each id once, though the table may hold a duplicate until it merges),
// and calls fn with each, rebuilt from the table's columns. The table
// keeps query names but not values, and durations in microseconds; the
// rest of the event is as the proxy recorded it. fn may keep the event.
// It stops at fn's first error and returns it.
func (c *Client) ReadEvents(ctx context.Context, q EventQuery, fn func(*event.RequestEvent) error) error {
	where := []string{"date >= toDate(?)", "time_unix_nano >= ?"}
	args := []any{q.Since.UTC().Format(time.DateOnly), q.Since.UnixNano()}
	if !q.Until.IsZero() {
		where = append(where, "date <= toDate(?)", "time_unix_nano < ?")
		args = append(args, q.Until.UTC().Format(time.DateOnly), q.Until.UnixNano())
	}
	if q.API != "" {
		where = append(where, "api = ?")
		args = append(args, q.API)
	}
	if q.Principal != "" {
		where = append(where, "principal_kind = ?", "principal = ?")
		args = append(args, q.PrincipalKind, q.Principal)
	}
	query := "SELECT " + captureColumns + " FROM " + c.db + ".events WHERE " + strings.Join(where, " AND ") +
		" ORDER BY time_unix_nano, event_id LIMIT 1 BY event_id"
	rows, err := c.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("reading events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			ev                 = new(event.RequestEvent)
			names              []string
			status, partition  uint16
			durUS, upUS        uint32
			ip, decision, auth string
			forwarded          []string
		)
		if err := rows.Scan(&ev.TimeUnixNano, &ev.Id, &ev.Proxy, &ev.Api, &ev.Method, &ev.Host, &ev.Path, &names, &status,
			&ev.RequestBytes, &ev.ResponseBytes, &durUS, &upUS, &ip, &forwarded, &ev.UserAgent, &ev.TlsFingerprint,
			&ev.HeaderFingerprint, &ev.TlsJa3, &ev.AcceptLanguage, &ev.Account, &ev.ApiKeyId, &ev.TokenId, &ev.TokenHash,
			&ev.Subject, &ev.Session, &ev.Origin, &ev.Referer, &decision, &ev.Check, &ev.Reason, &auth, &partition); err != nil {
			return fmt.Errorf("reading events: %w", err)
		}
		ev.Schema = event.SchemaVersion
		ev.Status, ev.Partition = uint32(status), uint32(partition)
		ev.DurationNanos, ev.UpstreamLatencyNanos = int64(durUS)*1e3, int64(upUS)*1e3
		if a, err := netip.ParseAddr(ip); err == nil {
			ev.ClientIp = event.ClientIPBytes(a)
		}
		if len(forwarded) > 0 {
			ev.ForwardedFor = forwarded
		}
		for _, n := range names {
			ev.Query = append(ev.Query, &event.QueryParam{Name: n})
		}
		ev.Decision = event.Decision(event.Decision_value["DECISION_"+strings.ToUpper(decision)])
		ev.Auth = event.AuthOutcome(event.AuthOutcome_value["AUTH_"+strings.ToUpper(auth)])
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading events: %w", err)
	}
	return nil
}
