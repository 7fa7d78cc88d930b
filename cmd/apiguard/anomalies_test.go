package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// TestAnomaliesCommand publishes anomalies to a real JetStream as the
// pipeline does and reads them back with 'apiguard anomalies' and each
// of its filters.
func TestAnomaliesCommand(t *testing.T) {
	s := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, s)
	ctx := context.Background()
	if _, err := topology.Ensure(ctx, js, DefaultConfig().NATS.Config); err != nil {
		t.Fatal(err)
	}
	url := s.ClientURL()
	run1 := func(t *testing.T, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, "anomalies", append(args, "--nats", url), &out); err != nil {
			t.Fatalf("anomalies %v: %v", args, err)
		}
		return out.String()
	}
	if out := run1(t); !strings.Contains(out, "0 of 0 anomalies") {
		t.Errorf("an empty stream:\n%s", out)
	}

	now := time.Now()
	key := func(v string) *event.Principal { return &event.Principal{Kind: event.KindKey, Value: v} }
	anomalies := []*event.Anomaly{
		{Id: "a1", Detector: "rate", Api: "GET /orders/{id}", Principal: key("k1"), Score: 0.9, Severity: event.Severity_SEVERITY_HIGH, Summary: "k1 sends 40x its usual rate"},
		{Id: "a2", Detector: "probing", Api: "GET /orders/{id}", Principal: &event.Principal{Kind: event.KindIP, Value: "2001:db8::7"}, Score: 0.7, Severity: event.Severity_SEVERITY_MEDIUM, Summary: "404s"},
		{Id: "a3", Detector: "rate", Api: "POST /login", Principal: key("k2"), Score: 0.6, Severity: event.Severity_SEVERITY_MEDIUM},
		{Id: "a4", Detector: "stolen_token", Api: "POST /login", Principal: &event.Principal{Kind: event.KindToken, Value: "t1"},
			Members: []*event.Principal{key("k3")}, Score: 0.95, Severity: event.Severity_SEVERITY_CRITICAL, Summary: "one token, two networks"},
		{Id: "a5", Detector: "rate", Api: "GET /orders/{id}", Principal: key("k1"), Score: 0.8, Severity: event.Severity_SEVERITY_HIGH},
	}
	pub := topology.NewPublisher(js)
	for i, a := range anomalies {
		a.TimeUnixNano = now.Add(time.Duration(i-len(anomalies)) * time.Second).UnixNano()
		if err := pub.WriteAnomaly(ctx, a); err != nil {
			t.Fatal(err)
		}
	}

	ids := func(t *testing.T, args ...string) string {
		t.Helper()
		var got []struct{ Id string }
		out := run1(t, append(args, "--output", "json")...)
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("anomalies %v --output json: %v\n%s", args, err, out)
		}
		var s []string
		for _, a := range got {
			s = append(s, a.Id)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"all", nil, "a1,a2,a3,a4,a5"},
		{"principal kind:value", []string{"--principal", "key:k1"}, "a1,a5"},
		{"principal value of any kind", []string{"--principal", "k1"}, "a1,a5"},
		{"an IPv6 address is a value", []string{"--principal", "2001:db8::7"}, "a2"},
		{"a member of a shared credential", []string{"--principal", "key:k3"}, "a4"},
		{"kind must match", []string{"--principal", "sub:k1"}, ""},
		{"api", []string{"--api", "POST /login"}, "a3,a4"},
		{"detector", []string{"--detector", "rate"}, "a1,a3,a5"},
		{"limit keeps the latest", []string{"--limit", "2"}, "a4,a5"},
		{"filters and limit", []string{"--detector", "rate", "--limit", "1", "--principal", "key:k1"}, "a5"},
		{"since after them", []string{"--since", now.Add(time.Hour).Format(time.RFC3339)}, ""},
		{"since a duration", []string{"--since", "10m"}, "a1,a2,a3,a4,a5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(t, tc.args...); got != tc.want {
				t.Errorf("anomalies %v = %q, want %q", tc.args, got, tc.want)
			}
		})
	}

	t.Run("table", func(t *testing.T) {
		out := run1(t, "--limit", "3")
		for _, want := range []string{"TIME", "DETECTOR", "stolen_token", "critical", "token:t1", "one token, two networks", "3 of 5 anomalies"} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "k1 sends") {
			t.Errorf("--limit 3 shows the oldest:\n%s", out)
		}
	})

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{{"--since", "yesterday"}, {"--limit", "-1"}, {"--output", "xml"}, {"extra"}} {
			err := run(ctx, "anomalies", append(args, "--nats", url), io.Discard)
			if err == nil || !strings.Contains(err.Error(), "usage") {
				t.Errorf("anomalies %v: %v, want a usage error", args, err)
			}
		}
	})

	t.Run("no stream", func(t *testing.T) {
		bare := testutil.JetStream(t, -1, "")
		err := run(ctx, "anomalies", []string{"--nats", bare.ClientURL()}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "no pipeline has run") {
			t.Errorf("anomalies on a NATS without the stream: %v", err)
		}
	})
}

// TestOperatorCommandsFailFast runs the commands an operator types with
// no NATS to talk to: each fails at once (not after retrying for 5 s)
// and says how to start one.
func TestOperatorCommandsFailFast(t *testing.T) {
	closed := closedAddr(t)
	cfgFile := writeFile(t, t.TempDir(), "c.yaml", "nats:\n  listen: "+closed+"\n")
	for _, args := range [][]string{
		{"blocks", "--nats", "nats://" + closed},
		{"blocks", "--config", cfgFile}, // the embedded server of 'apiguard up' on nats.listen
		{"block", "ip", "192.0.2.1", "--nats", "nats://" + closed},
		{"unblock", "ip", "192.0.2.1", "--config", cfgFile},
		{"allow", "key", "k1", "--config", cfgFile},
		{"unallow", "key", "k1", "--config", cfgFile},
		{"anomalies", "--config", cfgFile},
		{"replay", "capture", "--out", "x.capture", "--config", cfgFile},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			began := time.Now()
			err := run(context.Background(), args[0], args[1:], io.Discard)
			took := time.Since(began)
			if err == nil {
				t.Fatal("succeeded without NATS")
			}
			for _, want := range []string{"no NATS server answers at nats://" + closed, "apiguard up", "--nats URL"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			// One attempt, bounded by operatorDialTimeout; the old
			// behaviour retried for 5 s.
			if took > 3*operatorDialTimeout {
				t.Errorf("took %s to fail", took)
			}
		})
	}
}
