package alerts

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func anomaly(sev event.Severity, principal string) *event.Anomaly {
	return &event.Anomaly{
		Schema: event.SchemaVersion, Id: event.NewID(time.Now()), TimeUnixNano: time.Now().UnixNano(),
		Detector: "rate", Api: "POST /orders", Principal: &event.Principal{Kind: "key", Value: principal},
		Score: 0.99, Severity: sev, Summary: "40x the usual rate",
		Deviations: []*event.Deviation{{Feature: "rate", Observed: 40, Expected: 1, Deviation: 39}},
		EventIds:   []string{"E1"},
	}
}

// run starts s.Run and returns the function that stops it.
func run(t *testing.T, s *Sender) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func newSender(t *testing.T, cfg Config, env map[string]string) *Sender {
	t.Helper()
	s, err := New(cfg, func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.backoff = 10 * time.Millisecond
	return s
}

type gettableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func activeAlerts(t *testing.T, base string) []gettableAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts?active=true&silenced=false&inhibited=false")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []gettableAlert
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAlertmanagerFiresThenResolves(t *testing.T) {
	am := testutil.StartAlertmanager(t)
	cfg := DefaultConfig()
	cfg.Alertmanager = secret.URL(am)
	cfg.ResolveAfter = 3 * time.Second
	cfg.DashboardURL = "http://grafana/d/investigate?var-principal={{.PrincipalValue}}&from={{.From}}"
	s := newSender(t, cfg, nil)
	stop := run(t, s)
	defer stop()

	if err := s.WriteAnomaly(context.Background(), anomaly(event.Severity_SEVERITY_CRITICAL, "k 1&2")); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAnomaly(context.Background(), anomaly(event.Severity_SEVERITY_LOW, "quiet")); err != nil {
		t.Fatal(err)
	}
	var got []gettableAlert
	testutil.Eventually(t, 10*time.Second, func() bool { got = activeAlerts(t, am); return len(got) == 1 },
		"alertmanager has %d active alerts, want 1", func() any { return len(got) })
	a := got[0]
	wantLabels := map[string]string{"alertname": AlertName, "detector": "rate", "api": "POST /orders",
		"principal_kind": "key", "principal": "k 1&2", "severity": "critical"}
	for k, v := range wantLabels {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}
	if !strings.Contains(a.Annotations["description"], "rate: 40 (expected 1, +39.0σ)") {
		t.Errorf("description %q lacks the deviation", a.Annotations["description"])
	}
	if !strings.Contains(a.Annotations["dashboard"], "var-principal=k+1%262") {
		t.Errorf("dashboard link %q does not carry the escaped principal", a.Annotations["dashboard"])
	}
	if s.Stats().Filtered.Load() != 1 {
		t.Errorf("filtered = %d, want 1 (the low anomaly)", s.Stats().Filtered.Load())
	}
	// Not refreshed, it resolves at endsAt.
	testutil.Eventually(t, 15*time.Second, func() bool { return len(activeAlerts(t, am)) == 0 },
		"the alert did not resolve after resolve_after")
}

func TestWebhookSignedAndRetried(t *testing.T) {
	key := []byte("s3cret")
	var calls atomic.Int32
	var mu sync.Mutex
	var got Payload
	var verr error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		verr = Verify(key, r.Header.Get(SignatureHeader), body, time.Now(), time.Minute)
		_ = json.Unmarshal(body, &got)
		if r.Header.Get(DeliveryHeader) != got.ID {
			verr = errors.New("delivery header is not the anomaly id")
		}
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Webhooks = []WebhookConfig{{URL: secret.String(srv.URL + "/hook"), Format: "json", SecretEnv: "HOOK_KEY"}}
	s := newSender(t, cfg, map[string]string{"HOOK_KEY": string(key)})
	stop := run(t, s)
	defer stop()
	a := anomaly(event.Severity_SEVERITY_HIGH, "k1")
	_ = s.WriteAnomaly(context.Background(), a)
	testutil.Eventually(t, 10*time.Second, func() bool { return s.Stats().Delivered.Load() == 1 }, "not delivered")
	mu.Lock()
	defer mu.Unlock()
	if verr != nil {
		t.Errorf("receiver: %v", verr)
	}
	if got.ID != a.Id || got.Principal.Value != "k1" || len(got.Features) != 1 || got.Severity != "high" {
		t.Errorf("payload %+v", got)
	}
	if r := s.Stats().Retries.Load(); r != 2 {
		t.Errorf("retries = %d, want 2", r)
	}
}

func TestWebhookClientErrorIsNotRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no such hook", http.StatusNotFound)
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Webhooks = []WebhookConfig{{URL: secret.String(srv.URL), Format: "slack"}}
	s := newSender(t, cfg, nil)
	stop := run(t, s)
	defer stop()
	_ = s.WriteAnomaly(context.Background(), anomaly(event.Severity_SEVERITY_HIGH, "k1"))
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Stats().Failed.Load() == 1 }, "not failed")
	if calls.Load() != 1 || s.Stats().Retries.Load() != 0 {
		t.Errorf("calls %d, retries %d; want 1 and 0", calls.Load(), s.Stats().Retries.Load())
	}
}

func TestSlackPayloadEscapesWhatAnAttackerChose(t *testing.T) {
	a := anomaly(event.Severity_SEVERITY_CRITICAL, "<!channel> <http://evil|click>")
	m := toSlack(a, "http://grafana/d/x")
	if strings.Contains(m.Blocks[0].Text.Text, "<!channel>") || strings.Contains(m.Blocks[0].Text.Text, "<http://evil") {
		t.Errorf("principal not escaped: %s", m.Blocks[0].Text.Text)
	}
	if !strings.Contains(m.Blocks[0].Text.Text, "<http://grafana/d/x|Investigate>") {
		t.Errorf("no investigate link: %s", m.Blocks[0].Text.Text)
	}
	if !strings.HasPrefix(m.Text, "[CRITICAL] rate on POST /orders") {
		t.Errorf("text %q", m.Text)
	}
}

func TestFullQueueDropsInsteadOfBlocking(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	cfg := DefaultConfig()
	cfg.QueueSize = 1
	cfg.Webhooks = []WebhookConfig{{URL: secret.String(srv.URL), Format: "slack"}}
	s := newSender(t, cfg, nil)
	stop := run(t, s)
	defer stop()
	done := make(chan struct{})
	go func() {
		for range 10 {
			_ = s.WriteAnomaly(context.Background(), anomaly(event.Severity_SEVERITY_HIGH, "k"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("WriteAnomaly blocked on a stuck destination")
	}
	if d := s.Stats().Dropped.Load(); d < 8 {
		t.Errorf("dropped = %d, want at least 8 of 10 with a queue of 1", d)
	}
}

func TestVerify(t *testing.T) {
	key, body := []byte("k"), []byte(`{"id":"A"}`)
	now := time.Unix(1_800_000_000, 0)
	good := Sign(key, now, body)
	for _, tc := range []struct {
		name   string
		key    []byte
		header string
		body   []byte
		want   error
	}{
		{"good", key, good, body, nil},
		{"second v1 matches", key, good + ",v1=" + strings.Repeat("0", 64), body, nil},
		{"tampered body", key, good, []byte(`{"id":"B"}`), ErrSignatureMismatch},
		{"wrong key", []byte("other"), good, body, ErrSignatureMismatch},
		{"stale", key, Sign(key, now.Add(-10*time.Minute), body), body, ErrSignatureStale},
		{"future", key, Sign(key, now.Add(10*time.Minute), body), body, ErrSignatureStale},
		{"no v1", key, "t=1800000000", body, ErrSignatureMalformed},
		{"no t", key, "v1=" + strings.Repeat("a", 64), body, ErrSignatureMalformed},
		{"short mac", key, "t=1800000000,v1=abcd", body, ErrSignatureMalformed},
		{"garbage", key, "hello", body, ErrSignatureMalformed},
		{"empty", key, "", body, ErrSignatureMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.key, tc.header, tc.body, now, 5*time.Minute)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	key := []byte("k")
	now := time.Unix(1_800_000_000, 0)
	f.Add(Sign(key, now, []byte("body")), []byte("body"))
	f.Add("t=1,v1=zz", []byte(""))
	f.Add("t=,v1=,v1=", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if Verify(key, header, body, now, time.Minute) != nil {
			return
		}
		// Accepted: the header must carry the true MAC for its timestamp.
		var ts string
		for _, part := range strings.Split(header, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
				ts = v
			}
		}
		if !strings.Contains(strings.ToLower(header), "v1="+hex.EncodeToString(mac(key, ts, body))) {
			t.Fatalf("accepted %q for %q without its MAC", header, body)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"severity", func(c *Config) { c.MinSeverity = "urgent" }, "alerts.min_severity"},
		{"resolve", func(c *Config) { c.ResolveAfter = 0 }, "alerts.resolve_after"},
		{"am url", func(c *Config) { c.Alertmanager = "ftp://x" }, "alerts.alertmanager"},
		{"template", func(c *Config) { c.DashboardURL = "{{.Oops" }, "alerts.dashboard_url"},
		{"format", func(c *Config) { c.Webhooks = []WebhookConfig{{URL: "http://h", Format: "xml"}} }, "alerts.webhooks[0].format"},
		{"unsigned json", func(c *Config) { c.Webhooks = []WebhookConfig{{URL: "http://h", Format: "json"}} }, "alerts.webhooks[0].secret_env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			err := cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	cfg := DefaultConfig()
	cfg.Webhooks = []WebhookConfig{{URL: "http://h", Format: "json", SecretEnv: "EMPTY"}}
	if _, err := New(cfg, func(string) string { return "" }, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "$EMPTY is empty") {
		t.Errorf("New with an empty secret = %v", err)
	}
}
