package clickhouse

import (
	"time"

	"github.com/apiguard/apiguard/event"
)

// Baseline is one detector's notion of normal for one API and feature at a
// moment: the rows of the baselines table.
type Baseline struct {
	Time       time.Time
	Detector   string
	API        string
	Feature    string
	Centre     float64
	Spread     float64
	Samples    uint32
	Principals uint32
	Partition  uint16
}

func unixTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func micros(ns int64) uint32 {
	us := ns / 1e3
	switch {
	case us < 0:
		return 0
	case us > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(us)
}

// ip16 is the client address as 16 bytes, IPv4 mapped into IPv6, for
// range queries; "" when the event has none.
func ip16(b []byte) string {
	a := event.ClientIP(b)
	if !a.IsValid() {
		return ""
	}
	v := a.As16()
	return string(v[:])
}

// eventRow is a decoded event and its principal, in one allocation.
type eventRow struct {
	ev          event.RequestEvent
	kind, value string
}

func eventFields() []field[*eventRow] {
	type r = *eventRow
	return []field[r]{
		col("time", func(r r) time.Time { return unixTime(r.ev.TimeUnixNano) }),
		col("time_unix_nano", func(r r) int64 { return r.ev.TimeUnixNano }),
		col("event_id", func(r r) string { return r.ev.Id }),
		col("proxy", func(r r) string { return r.ev.Proxy }),
		col("api", func(r r) string { return r.ev.Api }),
		col("method", func(r r) string { return r.ev.Method }),
		col("host", func(r r) string { return r.ev.Host }),
		col("path", func(r r) string { return r.ev.Path }),
		col("query_names", func(r r) []string {
			names := make([]string, len(r.ev.Query))
			for i, q := range r.ev.Query {
				names[i] = q.Name
			}
			return names
		}),
		col("status", func(r r) uint16 { return uint16(min(r.ev.Status, 65535)) }),
		col("request_bytes", func(r r) int64 { return r.ev.RequestBytes }),
		col("response_bytes", func(r r) int64 { return r.ev.ResponseBytes }),
		col("duration_us", func(r r) uint32 { return micros(r.ev.DurationNanos) }),
		col("upstream_us", func(r r) uint32 { return micros(r.ev.UpstreamLatencyNanos) }),
		col("client_ip", func(r r) string { return event.ClientIPString(r.ev.ClientIp) }),
		col("client_ip_num", func(r r) string { return ip16(r.ev.ClientIp) }),
		col("forwarded_for", func(r r) []string { return nonNil(r.ev.ForwardedFor) }),
		col("user_agent", func(r r) string { return r.ev.UserAgent }),
		col("tls_fingerprint", func(r r) string { return r.ev.TlsFingerprint }),
		col("header_fingerprint", func(r r) string { return r.ev.HeaderFingerprint }),
		col("tls_ja3", func(r r) string { return r.ev.TlsJa3 }),
		col("accept_language", func(r r) string { return r.ev.AcceptLanguage }),
		col("account", func(r r) string { return r.ev.Account }),
		col("api_key_id", func(r r) string { return r.ev.ApiKeyId }),
		col("token_id", func(r r) string { return r.ev.TokenId }),
		col("token_hash", func(r r) string { return r.ev.TokenHash }),
		col("subject", func(r r) string { return r.ev.Subject }),
		col("session", func(r r) string { return r.ev.Session }),
		col("origin", func(r r) string { return r.ev.Origin }),
		col("referer", func(r r) string { return r.ev.Referer }),
		col("principal_kind", func(r r) string { return r.kind }),
		col("principal", func(r r) string { return r.value }),
		col("decision", func(r r) string { return r.ev.Decision.Label() }),
		col("check_name", func(r r) string { return r.ev.Check }),
		col("reason", func(r r) string { return r.ev.Reason }),
		col("auth", func(r r) string { return r.ev.Auth.Label() }),
		col("stream_partition", func(r r) uint16 { return uint16(min(r.ev.Partition, 65535)) }),
	}
}

func anomalyFields() []field[*event.Anomaly] {
	type r = *event.Anomaly
	devs := func(a r, f func(*event.Deviation) float64) []float64 {
		out := make([]float64, len(a.Deviations))
		for i, d := range a.Deviations {
			out[i] = f(d)
		}
		return out
	}
	return []field[r]{
		col("time", func(a r) time.Time { return unixTime(a.TimeUnixNano) }),
		col("time_unix_nano", func(a r) int64 { return a.TimeUnixNano }),
		col("anomaly_id", func(a r) string { return a.Id }),
		col("detector", func(a r) string { return a.Detector }),
		col("api", func(a r) string { return a.Api }),
		col("principal_kind", func(a r) string { return a.GetPrincipal().GetKind() }),
		col("principal", func(a r) string { return a.GetPrincipal().GetValue() }),
		col("score", func(a r) float64 { return a.Score }),
		col("risk", func(a r) float64 { return a.Risk }),
		col("severity", func(a r) string { return a.Severity.Label() }),
		col("features", func(a r) []string {
			out := make([]string, len(a.Deviations))
			for i, d := range a.Deviations {
				out[i] = d.Feature
			}
			return out
		}),
		col("observed", func(a r) []float64 { return devs(a, func(d *event.Deviation) float64 { return d.Observed }) }),
		col("expected", func(a r) []float64 { return devs(a, func(d *event.Deviation) float64 { return d.Expected }) }),
		col("deviation", func(a r) []float64 { return devs(a, func(d *event.Deviation) float64 { return d.Deviation }) }),
		col("event_ids", func(a r) []string { return nonNil(a.EventIds) }),
		col("summary", func(a r) string { return a.Summary }),
	}
}

func actionFields() []field[*event.Action] {
	type r = *event.Action
	return []field[r]{
		col("time", func(a r) time.Time { return unixTime(a.TimeUnixNano) }),
		col("time_unix_nano", func(a r) int64 { return a.TimeUnixNano }),
		col("action_id", func(a r) string { return a.Id }),
		col("kind", func(a r) string { return a.Kind.Label() }),
		col("target_kind", func(a r) string { return a.GetTarget().GetKind() }),
		col("target", func(a r) string { return a.GetTarget().GetValue() }),
		col("ttl_seconds", func(a r) int64 { return a.TtlSeconds }),
		col("reason", func(a r) string { return a.Reason }),
		col("anomaly_id", func(a r) string { return a.AnomalyId }),
		col("actor", func(a r) string { return a.Actor }),
		col("dry_run", func(a r) uint8 {
			if a.DryRun {
				return 1
			}
			return 0
		}),
		col("trigger_unix_nano", func(a r) int64 { return a.TriggerUnixNano }),
	}
}

func baselineFields() []field[*Baseline] {
	type r = *Baseline
	return []field[r]{
		col("time", func(b r) time.Time { return b.Time.UTC() }),
		col("detector", func(b r) string { return b.Detector }),
		col("api", func(b r) string { return b.API }),
		col("feature", func(b r) string { return b.Feature }),
		col("centre", func(b r) float64 { return b.Centre }),
		col("spread", func(b r) float64 { return b.Spread }),
		col("samples", func(b r) uint32 { return b.Samples }),
		col("principals", func(b r) uint32 { return b.Principals }),
		col("stream_partition", func(b r) uint16 { return b.Partition }),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
