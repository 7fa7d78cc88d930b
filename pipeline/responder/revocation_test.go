package responder_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// idp is a loopback stand-in for an identity provider's RFC 7009
// revocation endpoint: it checks the method, the content type, the client
// authentication and the form, and answers with the statuses it is told
// to (200 once they run out).
type idp struct {
	t        *testing.T
	id, pass string
	post     bool // client_secret_post instead of client_secret_basic
	mu       sync.Mutex
	statuses []int
	delay    time.Duration
	revoked  []string // tokens revoked (answered 200)
	calls    int
	bad      []string
}

func (s *idp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls++
	status := http.StatusOK
	if len(s.statuses) > 0 {
		status, s.statuses = s.statuses[0], s.statuses[1:]
	}
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	fail := func(why string, code int) {
		s.mu.Lock()
		s.bad = append(s.bad, why)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write([]byte(`{"error":"invalid_request"}`))
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		fail("method or content type", http.StatusBadRequest)
		return
	}
	if err := r.ParseForm(); err != nil {
		fail("form", http.StatusBadRequest)
		return
	}
	id, pass, basic := r.BasicAuth()
	if s.post {
		id, pass, basic = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), false
		if r.Header.Get("Authorization") != "" {
			fail("basic auth sent with client_secret_post", http.StatusBadRequest)
			return
		}
	} else if !basic {
		fail("no basic auth", http.StatusUnauthorized)
		return
	} else {
		// RFC 6749 2.3.1: the id and the secret are form-encoded.
		id, _ = url.QueryUnescape(id)
		pass, _ = url.QueryUnescape(pass)
	}
	if id != s.id || pass != s.pass {
		w.Header().Set("WWW-Authenticate", `Basic realm="idp"`)
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	tok, hint := r.PostForm.Get("token"), r.PostForm.Get("token_type_hint")
	if tok == "" || (hint != "access_token" && hint != "refresh_token") {
		fail("token or hint", http.StatusBadRequest)
		return
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
		return
	}
	s.mu.Lock()
	s.revoked = append(s.revoked, tok)
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *idp) snapshot() (calls int, revoked, bad []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, append([]string(nil), s.revoked...), append([]string(nil), s.bad...)
}

func revocationConfig(endpoint, auth string) responder.RevocationConfig {
	c := responder.DefaultRevocationConfig()
	c.Backoff, c.Timeout = 10*time.Millisecond, 200*time.Millisecond
	c.Issuers = []responder.IssuerConfig{{Name: "idp", Endpoint: endpoint, ClientID: "apiguard client", ClientSecretEnv: "IDP_SECRET", Auth: auth}}
	return c
}

func getenv(k string) string {
	if k == "IDP_SECRET" {
		return "s3cret:&="
	}
	return ""
}

// TestRevocationAtTheIssuer: an enforced revocation of a token reaches the
// issuer once, with the configured client authentication, through
// retries of 5xx answers; its outcome is on the audit stream. The thief's
// address the anomaly names is blocked in the bucket and reported to no
// one.
func TestRevocationAtTheIssuer(t *testing.T) {
	for _, auth := range []string{"client_secret_basic", "client_secret_post"} {
		t.Run(auth, func(t *testing.T) {
			s := &idp{t: t, id: "apiguard client", pass: "s3cret:&=", post: auth == "client_secret_post", statuses: []int{503, 500}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			cfg := responder.DefaultConfig()
			cfg.Revocation = revocationConfig(srv.URL+"/oauth2/revoke", auth)
			if err := cfg.Revocation.Validate(getenv); err != nil {
				t.Fatal(err)
			}
			w, audit := &memWriter{}, &memAudit{}
			r := responder.New(cfg, w, audit, time.Now, slog.New(slog.DiscardHandler))
			r.Revoker = responder.NewRevoker(cfg.Revocation, getenv, audit, time.Now, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- r.Revoker.Run(ctx) }()
			defer func() { cancel(); <-done }()
			a := withMembers(mkAnomaly("rv1", "stolen_token", "token", "jti-stolen", 0.99), "ip 203.0.113.66")
			for range 2 { // the pipeline's retry: reported once
				if err := r.WriteAnomaly(ctx, a); err != nil {
					t.Fatal(err)
				}
			}
			testutil.Eventually(t, 5*time.Second, func() bool { return r.Revoker.Stats().Revoked.Load() == 1 }, "the issuer revoked nothing")
			calls, revoked, bad := s.snapshot()
			if calls != 3 || len(revoked) != 1 || revoked[0] != "jti-stolen" || len(bad) > 0 {
				t.Errorf("issuer saw %d calls, revoked %v, bad requests %v; want 3 calls (two 5xx retried), jti-stolen once", calls, revoked, bad)
			}
			w.mu.Lock()
			thief, tok := w.entries[enforce.Key{Kind: enforce.KindIP, Value: "203.0.113.66"}], w.entries[enforce.Key{Kind: enforce.KindToken, Value: "jti-stolen"}]
			w.mu.Unlock()
			if thief.Action != enforce.ActionBlock || tok.Action != enforce.ActionRevoke {
				t.Errorf("thief's address %v, token %v; want blocked and revoked", thief.Action, tok.Action)
			}
			if st := r.Revoker.Stats(); st.Retries.Load() != 2 || st.Failed.Load() != 0 {
				t.Errorf("retries %d, failed %d", st.Retries.Load(), st.Failed.Load())
			}
			testutil.Eventually(t, time.Second, func() bool { return outcome(audit, "issuer:idp") != nil }, "no outcome audited")
			if o := outcome(audit, "issuer:idp"); !strings.Contains(o.Reason, "revoked at the issuer idp") || !strings.Contains(o.Reason, "after 3 attempt(s)") ||
				o.AnomalyId != "rv1" || o.Kind != event.ActionKind_ACTION_REVOKE {
				t.Errorf("outcome %+v", o)
			}
		})
	}
}

func outcome(a *memAudit, actor string) *event.Action {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, act := range a.actions {
		if act.Actor == actor {
			return act
		}
	}
	return nil
}

// TestRevocationFailures: a 4xx is not retried, a timeout or 5xx is
// retried up to max_attempts; both are counted and audited; and the
// responder acts on the next anomaly while a call is pending.
func TestRevocationFailures(t *testing.T) {
	tests := []struct {
		name     string
		s        *idp
		calls    int
		inReason string
	}{
		{"wrong secret: 401, not retried", &idp{id: "apiguard client", pass: "other"}, 1, "answered 401"},
		{"400: not retried", &idp{id: "apiguard client", pass: "s3cret:&=", statuses: []int{400}}, 1, "answered 400"},
		{"5xx every time", &idp{id: "apiguard client", pass: "s3cret:&=", statuses: []int{502, 502, 502, 502, 502}}, 5, "answered 502"},
		{"timeouts", &idp{id: "apiguard client", pass: "s3cret:&=", delay: time.Second}, 5, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.s)
			defer srv.Close()
			cfg := responder.DefaultConfig()
			cfg.Revocation = revocationConfig(srv.URL, "")
			cfg.Revocation.Timeout = 50 * time.Millisecond
			w, audit := &memWriter{}, &memAudit{}
			r := responder.New(cfg, w, audit, time.Now, slog.New(slog.DiscardHandler))
			r.Revoker = responder.NewRevoker(cfg.Revocation, getenv, audit, time.Now, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- r.Revoker.Run(ctx) }()
			defer func() { cancel(); <-done }()
			if err := r.WriteAnomaly(ctx, mkAnomaly("f1", "stolen_token", "token", "jti-1", 0.99)); err != nil {
				t.Fatal(err)
			}
			// The responder does not wait on the issuer.
			if err := r.WriteAnomaly(ctx, mkAnomaly("f2", "probing", "ip", "203.0.113.9", 0.9)); err != nil {
				t.Fatal(err)
			}
			if len(w.entries) != 2 {
				t.Errorf("entries %v, want the revocation and the block at once", w.entries)
			}
			testutil.Eventually(t, 5*time.Second, func() bool { return r.Revoker.Stats().Failed.Load() == 1 }, "no failure counted")
			// The issuer counts a call when its handler starts, which can
			// trail the client's timeout on a busy machine.
			testutil.Eventually(t, 2*time.Second, func() bool { calls, _, _ := tt.s.snapshot(); return calls >= tt.calls }, "fewer calls than attempts")
			if calls, _, _ := tt.s.snapshot(); calls != tt.calls {
				t.Errorf("%d calls, want %d", calls, tt.calls)
			}
			testutil.Eventually(t, time.Second, func() bool { return outcome(audit, "issuer:idp") != nil }, "no outcome audited")
			if o := outcome(audit, "issuer:idp"); !strings.Contains(o.Reason, "not revoked at the issuer idp") || !strings.Contains(o.Reason, tt.inReason) {
				t.Errorf("outcome reason %q, want %q", o.Reason, tt.inReason)
			}
		})
	}
}

// TestRevocationQueueBounded: past queue_size a revocation is dropped,
// counted and audited, and the responder goes on.
func TestRevocationQueueBounded(t *testing.T) {
	cfg := responder.DefaultConfig()
	cfg.Revocation = revocationConfig("http://127.0.0.1:1/revoke", "")
	cfg.Revocation.QueueSize = 2
	w, audit := &memWriter{}, &memAudit{}
	r := responder.New(cfg, w, audit, time.Now, slog.New(slog.DiscardHandler))
	r.Revoker = responder.NewRevoker(cfg.Revocation, getenv, audit, time.Now, slog.New(slog.DiscardHandler)) // not run
	for i := range 5 {
		a := mkAnomaly("q"+string(rune('a'+i)), "stolen_token", "token", "jti-q"+string(rune('a'+i)), 0.99)
		if err := r.WriteAnomaly(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if d := r.Revoker.Stats().Dropped.Load(); d != 3 || len(w.entries) != 5 {
		t.Errorf("dropped %d, entries %d; want 3 dropped and every token revoked at the proxies", d, len(w.entries))
	}
	if o := outcome(audit, "issuer:queue"); o == nil || !strings.Contains(o.Reason, "queue of 2 is full") {
		t.Errorf("drop not audited: %+v", o)
	}
}

// TestRevocationConfig: bad issuers are refused at start.
func TestRevocationConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*responder.IssuerConfig)
		want string
	}{
		{"plain http to a remote host", func(i *responder.IssuerConfig) { i.Endpoint = "http://idp.example.com/revoke" }, "http only to a loopback"},
		{"relative endpoint", func(i *responder.IssuerConfig) { i.Endpoint = "/revoke" }, "want an absolute https URL"},
		{"secret not set", func(i *responder.IssuerConfig) { i.ClientSecretEnv = "NOPE" }, `"NOPE" is not set`},
		{"unknown auth", func(i *responder.IssuerConfig) { i.Auth = "private_key_jwt" }, `auth: "private_key_jwt"`},
		{"unknown hint", func(i *responder.IssuerConfig) { i.TokenTypeHint = "id_token" }, `token_type_hint: "id_token"`},
		{"no client id", func(i *responder.IssuerConfig) { i.ClientID = "" }, "client_id: empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := revocationConfig("https://idp.example.com/oauth2/revoke", "")
			tt.mod(&c.Issuers[0])
			if err := c.Validate(getenv); err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), `responder.revocation.issuers[0] "idp"`) {
				t.Errorf("err = %v, want one naming the issuer and %q", err, tt.want)
			}
		})
	}
	if err := revocationConfig("https://idp.example.com/oauth2/revoke", "").Validate(getenv); err != nil {
		t.Error(err)
	}
	// Processes that call no issuer (operators' commands) need no secret.
	c := revocationConfig("https://idp.example.com/oauth2/revoke", "")
	c.Issuers[0].ClientSecretEnv = "NOT_SET_HERE"
	if err := c.Validate(nil); err != nil {
		t.Errorf("without the environment: %v", err)
	}
	cfg := responder.DefaultConfig()
	cfg.Revocation = c
	if err := cfg.Validate(); err != nil {
		t.Errorf("Config.Validate needs the secret: %v", err)
	}
}
