package alerts

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestFailuresNeverShowCredentials sends to destinations whose URLs carry
// credentials (basic auth, a token query, a webhook path), each failing a
// different way, and checks no error or log line shows them.
func TestFailuresNeverShowCredentials(t *testing.T) {
	const user, pass, qtoken, path, path4xx = "am-user-s3nt", "am-pass-s3nt", "q-token-s3nt", "hook-path-s3nt", "hook-4xx-s3nt"
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such hook", http.StatusNotFound)
	}))
	defer refuse.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	cfg.Retries = 0
	cfg.Timeout = 2 * time.Second
	cfg.Alertmanager = secret.URL("http://" + user + ":" + pass + "@" + closed + "/am?token=" + qtoken)
	cfg.Webhooks = []WebhookConfig{
		{URL: secret.String("http://" + closed + "/services/" + path), Format: "slack"},
		{URL: secret.String(refuse.URL + "/services/" + path4xx), Format: "json", SecretEnv: "KEY"},
	}
	var logs bytes.Buffer
	s, err := New(cfg, func(string) string { return "0123456789abcdef0123456789abcdef" },
		slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	a := anomaly(event.Severity_SEVERITY_HIGH, "k1")
	for _, q := range s.queues {
		err := q.d.send(context.Background(), a, "")
		if err == nil {
			t.Fatalf("%s: delivered to a closed port or a refusing server", q.d.name())
		}
		shown = append(shown, err.Error())
	}
	stop := run(t, s)
	_ = s.WriteAnomaly(context.Background(), a)
	testutil.Eventually(t, 10*time.Second, func() bool { return s.Stats().Failed.Load() == 3 }, "deliveries did not fail")
	stop()
	shown = append(shown, logs.String())
	bad := cfg
	bad.Alertmanager = secret.URL("ftp://" + user + ":" + pass + "@h/?token=" + qtoken)
	bad.Webhooks = []WebhookConfig{{URL: secret.String("ftp://h/services/" + path), Format: "slack"}}
	shown = append(shown, bad.Validate().Error())
	bad.Alertmanager = ""
	shown = append(shown, bad.Validate().Error())
	for _, out := range shown {
		for _, s := range []string{user, pass, qtoken, path, path4xx} {
			if strings.Contains(out, s) {
				t.Errorf("%q shows %q", out, s)
			}
		}
	}
	if !strings.Contains(logs.String(), "alert not delivered") {
		t.Errorf("no failure logged:\n%s", logs.String())
	}
}
