package auth

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// siteverifyStandIn speaks the reCAPTCHA v3 / Turnstile siteverify
// protocol on loopback: attestation "human" scores 0.9, "bot" 0.1, and
// anything else fails.
func siteverifyStandIn(t *testing.T, secret string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodPost || r.ParseForm() != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostForm.Get("secret") != secret {
			_, _ = io.WriteString(w, `{"success":false,"error-codes":["invalid-input-secret"]}`)
			return
		}
		switch r.PostForm.Get("response") {
		case "human":
			_, _ = io.WriteString(w, `{"success":true,"score":0.9,"action":"login","hostname":"shop.example"}`)
		case "bot":
			_, _ = io.WriteString(w, `{"success":true,"score":0.1,"action":"login","hostname":"shop.example"}`)
		default:
			_, _ = io.WriteString(w, `{"success":false,"error-codes":["invalid-input-response"]}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

type tokenFixture struct {
	url    string
	events *collector
}

// newTokenFixture serves proxy tokens on engine over a real socket.
func newTokenFixture(t *testing.T, engine string) *tokenFixture {
	t.Helper()
	sv, _ := siteverifyStandIn(t, "sv-secret")
	t.Setenv("TEST_SV_SECRET", "sv-secret")
	master, _ := NewMasterKey()
	t.Setenv("TEST_MASTER_KEY", master)
	key, _ := ParseMasterKey(master)
	v, _ := NewVault(key)
	_ = v.Set("tokens/seed", []byte(strings.Repeat("z", 32)), time.Now())
	vaultFile := filepath.Join(t.TempDir(), "vault.yaml")
	if err := v.Save(vaultFile); err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	cfg := proxy.DefaultConfig()
	cfg.Upstream = up.URL
	cfg.Engine = engine
	cfg.Routes = []string{"GET /cart", "POST /cart"}
	cfg.Secrets.VaultFile, cfg.Secrets.MasterKeyEnv = vaultFile, "TEST_MASTER_KEY"
	cfg.Tokens.Enabled = true
	cfg.Tokens.Scopes = []string{"cart:read", "cart:write"}
	cfg.Tokens.SiteVerify = proxy.SiteVerifyConfig{URL: sv.URL, SecretEnv: "TEST_SV_SECRET", MinScore: 0.5,
		Hostnames: []string{"shop.example"}, Action: "login", Timeout: 2 * time.Second}
	cfg.Auth.Routes = map[string]proxy.RouteAuth{
		"GET /cart":  {Require: proxy.RequireJWT, Scopes: []string{"cart:read"}},
		"POST /cart": {Require: proxy.RequireJWT, Scopes: []string{"cart:write"}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	chain := buildOnly(t, cfg, NewNonceCache(1000), TokensName, AuthName)
	f := &tokenFixture{events: &collector{}}
	p, err := proxy.NewWithChain(cfg, chain, nil, f.events, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.url = serve(t, p, cfg)
	return f
}

type client struct{ origin, ua, lang string }

func (f *tokenFixture) do(t *testing.T, c client, method, path, bearer string, form url.Values) (int, map[string]any, *event.RequestEvent) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r, _ := http.NewRequest(method, f.url+path, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.Header.Set("Origin", c.origin)
	r.Header.Set("User-Agent", c.ua)
	r.Header.Set("Accept-Language", c.lang)
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.NewDecoder(resp.Body).Decode(&out)
	}
	return resp.StatusCode, out, f.events.Last(t)
}

// TestProxyTokens runs on both engines: the token endpoints read each
// request's own form, on a keep-alive connection too.
func TestProxyTokens(t *testing.T) {
	for _, engine := range []string{proxy.EngineNative, proxy.EngineNetHTTP} {
		t.Run(engine, func(t *testing.T) { testProxyTokens(t, engine) })
	}
}

func testProxyTokens(t *testing.T, engine string) {
	f := newTokenFixture(t, engine)
	browser := client{"https://shop.example", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "en-GB"}

	// Attestations the verifier refuses get no token.
	for att, want := range map[string]string{"bot": "score 0.10 under 0.50", "forged": "invalid-input-response"} {
		status, _, ev := f.do(t, browser, "POST", "/.apiguard/token", "", url.Values{"attestation": {att}})
		if status != http.StatusForbidden || !strings.Contains(ev.Reason, want) {
			t.Errorf("attestation %q: %d %q, want 403 %q", att, status, ev.Reason, want)
		}
	}

	status, out, _ := f.do(t, browser, "POST", "/.apiguard/token", "", url.Values{"attestation": {"human"}})
	tok, _ := out["access_token"].(string)
	if status != 200 || tok == "" || out["expires_in"].(float64) > 300 {
		t.Fatalf("token endpoint: %d %v", status, out)
	}
	if status, _, ev := f.do(t, browser, "GET", "/cart", tok, nil); status != 200 || ev.Auth != event.AuthOutcome_AUTH_OK {
		t.Fatalf("the token's own client: %d %v %q", status, ev.Auth, ev.Reason)
	}
	if status, _, _ := f.do(t, browser, "GET", "/cart", "", nil); status != 401 {
		t.Errorf("no token: %d, want 401", status)
	}

	// A stolen token, used from another origin or another client.
	for name, thief := range map[string]client{
		"origin": {"https://evil.example", browser.ua, browser.lang},
		"client": {browser.origin, "python-requests/2.32", browser.lang},
	} {
		status, _, ev := f.do(t, thief, "GET", "/cart", tok, nil)
		if status != 401 || !strings.Contains(ev.Reason, "proxy token") || ev.Check != TokensName {
			t.Errorf("token used from another %s: %d %s %q", name, status, ev.Check, ev.Reason)
		}
	}

	// Token exchange for fewer scopes: read-only, refused on writes.
	status, out, _ = f.do(t, browser, "POST", "/.apiguard/token/exchange", "", url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {tok}, "scope": {"cart:read"}})
	readOnly, _ := out["access_token"].(string)
	if status != 200 || readOnly == "" || out["scope"] != "cart:read" {
		t.Fatalf("exchange: %d %v", status, out)
	}
	if status, _, _ := f.do(t, browser, "GET", "/cart", readOnly, nil); status != 200 {
		t.Errorf("down-scoped token on a read: %d", status)
	}
	if status, _, ev := f.do(t, browser, "POST", "/cart", readOnly, nil); status != 403 || !strings.Contains(ev.Reason, "lacks scope cart:write") {
		t.Errorf("down-scoped token on a write: %d %q", status, ev.Reason)
	}
	// Up-scoping is refused.
	status, out, _ = f.do(t, browser, "POST", "/.apiguard/token/exchange", "", url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {readOnly}, "scope": {"cart:write"}})
	if status != 400 || out["error"] != "invalid_scope" {
		t.Errorf("up-scoping exchange: %d %v", status, out)
	}

	// The public keys are served, and hold no private part.
	status, out, _ = f.do(t, browser, "GET", "/.well-known/apiguard/jwks.json", "", nil)
	keys, _ := out["keys"].([]any)
	if status != 200 || len(keys) != 3 {
		t.Fatalf("jwks: %d %v", status, out)
	}
	for _, k := range keys {
		if _, private := k.(map[string]any)["d"]; private {
			t.Error("the JWKS holds a private key")
		}
	}
}

func TestTokenKeysRotate(t *testing.T) {
	k, err := NewTokenKeys([]byte(strings.Repeat("s", 32)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)
	kid0, key0 := k.Current(t0)
	kid1, key1 := k.Current(t0.Add(time.Hour))
	if kid0 == kid1 || key0.Equal(key1) {
		t.Fatal("the key did not rotate")
	}
	// Another proxy with the same seed derives the same key.
	other, _ := NewTokenKeys([]byte(strings.Repeat("s", 32)), time.Hour)
	if kid, key := other.Current(t0); kid != kid0 || !key.Equal(key0) {
		t.Error("same seed, different key")
	}
	// A token signed just before rotation still verifies after it.
	if set := k.PublicSet(t0.Add(time.Hour)); len(set.Key(kid0)) != 1 {
		t.Error("the previous key left the set at rotation")
	}
	if set := k.PublicSet(t0.Add(2 * time.Hour)); len(set.Key(kid0)) != 0 {
		t.Error("a key two epochs old is still trusted")
	}
	if _, err := NewTokenKeys([]byte("short"), time.Hour); err == nil {
		t.Error("short seed accepted")
	}
}
