package auth

import (
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/proxy"
)

func TestVaultSealsAndOpens(t *testing.T) {
	k1, _ := NewMasterKey()
	key, err := ParseMasterKey(k1)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVault(key)
	now := time.Now()
	if err := v.Set("upstream/payments", []byte("sk_live_123"), now); err != nil {
		t.Fatal(err)
	}
	if err := v.Set("signing/partner-1", []byte("s3cret"), now); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vault.yaml")
	if err := v.Save(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), "sk_live_123") || strings.Contains(string(raw), base64.StdEncoding.EncodeToString([]byte("sk_live_123"))) {
		t.Fatal("the vault file holds a plaintext")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("vault mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := LoadVault(path, key, false)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := got.Open("upstream/payments"); err != nil || string(p) != "sk_live_123" {
		t.Fatalf("Open = %q, %v", p, err)
	}

	// Another master key is refused by name, before any secret is tried.
	k2, _ := NewMasterKey()
	key2, _ := ParseMasterKey(k2)
	if _, err := LoadVault(path, key2, false); err == nil || !strings.Contains(err.Error(), "sealed under master key") {
		t.Errorf("wrong key: %v", err)
	}
	// A sealed value moved to another name does not open (the name is the
	// additional data).
	moved := strings.Replace(string(raw), "name: signing/partner-1", "name: signing/partner-9", 1)
	if err := os.WriteFile(path, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadVault(path, key, false); err == nil || !strings.Contains(err.Error(), "tampered or moved") {
		t.Errorf("moved secret: %v", err)
	}

	// Rekey: everything opens under the new key only.
	if err := got.Rekey(key2); err != nil {
		t.Fatal(err)
	}
	if err := got.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadVault(path, key, false); err == nil {
		t.Error("old key still opens the rekeyed vault")
	}
	again, err := LoadVault(path, key2, false)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := again.Open("signing/partner-1"); string(p) != "s3cret" {
		t.Errorf("after rekey: %q", p)
	}
}

func TestParseMasterKey(t *testing.T) {
	for _, s := range []string{strings.Repeat("ab", 32), base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"} {
		if _, err := ParseMasterKey(s); err != nil {
			t.Errorf("ParseMasterKey(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "short", strings.Repeat("ab", 16)} {
		if _, err := ParseMasterKey(s); err == nil {
			t.Errorf("ParseMasterKey(%q) accepted", s)
		}
	}
}

// TestSecretInjection: the upstream gets the credential from the vault,
// never the client's copy; the client never sees it, even when the
// upstream echoes it; banner headers are stripped. Both engines set the
// upstream leg's headers their own way, so it runs on each, served over a
// real socket.
func TestSecretInjection(t *testing.T) {
	for _, engine := range []string{proxy.EngineNative, proxy.EngineNetHTTP} {
		t.Run(engine, func(t *testing.T) { testSecretInjection(t, engine) })
	}
}

func testSecretInjection(t *testing.T, engine string) {
	master, _ := NewMasterKey()
	t.Setenv("TEST_MASTER_KEY", master)
	key, _ := ParseMasterKey(master)
	v, _ := NewVault(key)
	_ = v.Set("upstream/payments", []byte("sk_live_123"), time.Now())
	vaultFile := filepath.Join(t.TempDir(), "vault.yaml")
	if err := v.Save(vaultFile); err != nil {
		t.Fatal(err)
	}
	seen := make(chan http.Header, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Server", "payments/1.2.3")
		w.Header().Set("X-Powered-By", "PHP/5.4")
		w.Header().Set("X-Debug-Auth", r.Header.Get("Authorization")) // a careless upstream
		w.Header().Set("X-Request-Cost", "3")
		_, _ = io.WriteString(w, "paid")
	}))
	defer up.Close()
	cfg := proxy.DefaultConfig()
	cfg.Upstream = up.URL
	cfg.Engine = engine
	cfg.Routes = []string{"POST /payments", "GET /items"}
	cfg.Secrets.VaultFile, cfg.Secrets.MasterKeyEnv = vaultFile, "TEST_MASTER_KEY"
	cfg.Secrets.Inject = []proxy.Injection{{Routes: []string{"POST /payments"}, Header: "Authorization", Secret: "upstream/payments", Format: "Bearer {secret}"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	chain := buildOnly(t, cfg, NewNonceCache(1000)) // injection only
	events := &collector{}
	p, err := proxy.NewWithChain(cfg, chain, nil, events, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, p, cfg)

	for _, tc := range []struct{ method, path, upstreamAuth string }{
		{"POST", "/payments", "Bearer sk_live_123"},
		{"GET", "/items", ""}, // the client's copy is stripped on other routes too
	} {
		req, _ := http.NewRequest(tc.method, url+tc.path, nil)
		req.Header.Set("Authorization", "Bearer client-forged")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := <-seen
		if got := h.Get("Authorization"); got != tc.upstreamAuth || len(h.Values("Authorization")) > 1 {
			t.Errorf("%s %s: upstream saw Authorization %q, want %q", tc.method, tc.path, h.Values("Authorization"), tc.upstreamAuth)
		}
		for _, banned := range []string{"Server", "X-Powered-By"} {
			if resp.Header.Get(banned) != "" {
				t.Errorf("%s %s: %s reached the client", tc.method, tc.path, banned)
			}
		}
		if strings.Contains(resp.Header.Get("X-Debug-Auth"), "sk_live") || strings.Contains(string(body), "sk_live") {
			t.Errorf("%s %s: the secret reached the client", tc.method, tc.path)
		}
		if resp.Header.Get("X-Request-Cost") != "3" {
			t.Errorf("%s %s: an ordinary header was stripped", tc.method, tc.path)
		}
	}
	if ev := events.Last(t); strings.Contains(ev.Reason, "sk_live") {
		t.Errorf("the secret reached the event: %q", ev.Reason)
	}
}
