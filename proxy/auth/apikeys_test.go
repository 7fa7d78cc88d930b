package auth

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

func writeKeys(t *testing.T, entries ...APIKey) string {
	t.Helper()
	b, err := yaml.Marshal(map[string][]APIKey{"keys": entries})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAPIKeys(t *testing.T) {
	good, goodE, _ := NewAPIKey("partner-1", "gold", []string{"orders:write", "items:read"})
	reader, readerE, _ := NewAPIKey("reader-1", "free", []string{"items:read"})
	off, offE, _ := NewAPIKey("old-1", "free", nil)
	offE.Disabled = true
	exp, expE, _ := NewAPIKey("trial-1", "free", nil)
	expE.Expires = time.Now().Add(-time.Hour)
	path := writeKeys(t, goodE, readerE, offE, expE)

	events := &collector{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	cfg := proxy.DefaultConfig()
	cfg.Upstream = up.URL
	cfg.Routes = []string{"POST /orders", "GET /items/{id}"}
	ac := proxy.DefaultAuthConfig()
	ac.KeysFile = path
	ac.Routes = map[string]proxy.RouteAuth{"POST /orders": {Require: "api_key", Scopes: []string{"orders:write"}}}
	if err := ac.Validate(false); err != nil {
		t.Fatal(err)
	}
	auth, err := NewAuth(ac, cfg.APIKeyHeader, AuthDeps{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(cfg, []proxy.Check{auth}, events, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	secretOf := func(k string) string { return k[strings.IndexByte(k, '.')+1:] }
	for _, tc := range []struct {
		name, method, path, key string
		status                  int
		auth                    event.AuthOutcome
		reason                  string
	}{
		{"valid key with the scope", "POST", "/orders", good, 200, event.AuthOutcome_AUTH_OK, ""},
		{"no key where one is required", "POST", "/orders", "", 401, event.AuthOutcome_AUTH_MISSING, "no api_key credential"},
		{"wrong secret", "POST", "/orders", "partner-1." + secretOf(reader), 401, event.AuthOutcome_AUTH_INVALID, "invalid API key partner-1"},
		{"unknown id", "POST", "/orders", "ghost." + secretOf(good), 401, event.AuthOutcome_AUTH_INVALID, "invalid API key ghost"},
		{"no secret", "POST", "/orders", "partner-1", 401, event.AuthOutcome_AUTH_INVALID, "invalid API key"},
		{"disabled key", "POST", "/orders", off, 401, event.AuthOutcome_AUTH_REVOKED, "disabled API key old-1"},
		{"expired key", "POST", "/orders", exp, 401, event.AuthOutcome_AUTH_EXPIRED, "expired API key trial-1"},
		{"insufficient scope", "POST", "/orders", reader, 403, event.AuthOutcome_AUTH_OK, "lacks scope orders:write"},
		{"optional route, no key", "GET", "/items/1", "", 200, event.AuthOutcome_AUTH_MISSING, ""},
		{"optional route, valid key", "GET", "/items/1", reader, 200, event.AuthOutcome_AUTH_OK, ""},
		{"optional route, wrong key refused", "GET", "/items/1", "reader-1.nope", 401, event.AuthOutcome_AUTH_INVALID, "invalid API key reader-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if tc.key != "" {
				req.Header.Set("X-API-Key", tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			ev := events.Last(t)
			if resp.StatusCode != tc.status || ev.Auth != tc.auth || !strings.Contains(ev.Reason, tc.reason) {
				t.Errorf("got %d %v %q; want %d %v %q", resp.StatusCode, ev.Auth, ev.Reason, tc.status, tc.auth, tc.reason)
			}
			if tc.status == 401 && resp.Header.Get("Www-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if s := secretOf(tc.key); tc.key != "" && len(s) > 8 && strings.Contains(fmt.Sprint(ev), s) {
				t.Errorf("the event carries the secret: %v", ev)
			}
		})
	}
}

func TestLoadKeysErrors(t *testing.T) {
	_, e, _ := NewAPIKey("a", "", nil)
	dup := writeKeys(t, e, e)
	bad := e
	bad.SecretSHA256 = "xyz"
	badHash := writeKeys(t, bad)
	unknown := filepath.Join(t.TempDir(), "k.yaml")
	_ = os.WriteFile(unknown, []byte("keys:\n  - id: a\n    secret: plain\n"), 0o600)
	for path, want := range map[string]string{dup: `"a" appears twice`, badHash: "keys[0] (a).secret_sha256", unknown: "field secret not found"} {
		if _, err := LoadKeys(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadKeys = %v, want %q", err, want)
		}
	}
	if err := (proxy.AuthConfig{Default: "api_key"}).Validate(false); err == nil || !strings.Contains(err.Error(), "keys_file") {
		t.Errorf("Validate without a key store = %v", err)
	}
}

func TestAuthWithoutKeyStoreVerifiesNothing(t *testing.T) {
	a, err := NewAuth(proxy.DefaultAuthConfig(), "X-API-Key", AuthDeps{})
	if err != nil {
		t.Fatal(err)
	}
	x := exchangeFor("GET", "/items/1", "", "")
	x.Req.Header.Set("X-API-Key", "client-07")
	if d := a.Check(x); d != nil {
		t.Errorf("a key was refused with no key store: %+v", d)
	}
}
