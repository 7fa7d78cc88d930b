package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/apiguard/apiguard/proxy"
)

// issuerKeysForTest are the keys one test issuer signs with.
type issuerKeysForTest struct {
	rsa   *rsa.PrivateKey
	ec    *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
	hmac  []byte
	jwks  []byte // public keys: rsa-1, ec-1, ed-1
	t0    time.Time
	other *rsa.PrivateKey // not in the set
}

func newIssuerKeys(t *testing.T) *issuerKeysForTest {
	t.Helper()
	k := &issuerKeysForTest{hmac: []byte(strings.Repeat("s", 40)), t0: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.other, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &k.rsa.PublicKey, KeyID: "rsa-1", Use: "sig"},
		{Key: &k.ec.PublicKey, KeyID: "ec-1", Use: "sig"},
		{Key: k.ed.Public(), KeyID: "ed-1", Use: "sig"},
	}}
	if k.jwks, err = json.Marshal(set); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *issuerKeysForTest) sign(t *testing.T, alg jose.SignatureAlgorithm, kid string, key any, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (k *issuerKeysForTest) claims(iss string, mods ...func(map[string]any)) map[string]any {
	c := map[string]any{"iss": iss, "aud": "orders-api", "sub": "alice", "jti": "t-1",
		"iat": k.t0.Add(-time.Minute).Unix(), "exp": k.t0.Add(10 * time.Minute).Unix(), "scope": "orders:read orders:write"}
	for _, m := range mods {
		m(c)
	}
	return c
}

// unsigned builds a token with the given header and claims and a signature
// the caller chooses: the shapes attackers send.
func unsigned(header, claims map[string]any, sig []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func testVerifier(t *testing.T, k *issuerKeysForTest) *JWTVerifier {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, k.jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_JWT_SECRET", string(k.hmac))
	cfg := proxy.DefaultJWTConfig()
	cfg.Issuers = []proxy.JWTIssuer{
		{Issuer: "https://idp.example", Audience: []string{"orders-api"}, Algorithms: []string{"RS256", "ES256", "EdDSA"}, JWKSFile: path, MaxAge: time.Hour},
		{Issuer: "internal", Audience: []string{"orders-api"}, Algorithms: []string{"HS256"}, SecretEnv: "TEST_JWT_SECRET"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	v, err := NewJWTVerifier(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWTVerify(t *testing.T) {
	k := newIssuerKeys(t)
	v := testVerifier(t, k)
	idp := "https://idp.example"
	pubDER := func() []byte { b, _ := json.Marshal(jose.JSONWebKey{Key: &k.rsa.PublicKey}); return b }()
	// RS/HS confusion: an HMAC over the token made with the RSA public key
	// as the secret, sent as HS256 to the RSA issuer.
	confusion := func() string {
		h := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
		hb, _ := json.Marshal(h)
		cb, _ := json.Marshal(k.claims(idp))
		input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
		mac := hmac.New(sha256.New, pubDER)
		mac.Write([]byte(input))
		return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}()
	for _, tc := range []struct {
		name    string
		tok     string
		ok      bool
		expired bool
		reason  string
	}{
		{"RS256", k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims(idp)), true, false, ""},
		{"ES256", k.sign(t, jose.ES256, "ec-1", k.ec, k.claims(idp)), true, false, ""},
		{"EdDSA without kid", k.sign(t, jose.EdDSA, "", k.ed, k.claims(idp)), true, false, ""},
		{"HS256 shared secret", k.sign(t, jose.HS256, "", k.hmac, k.claims("internal")), true, false, ""},
		{"alg none", unsigned(map[string]any{"alg": "none", "typ": "JWT"}, k.claims(idp), nil), false, false, "malformed token"},
		{"RS256 key used as HS256 secret", confusion, false, false, "algorithm HS256 not allowed"},
		{"HS256 to an RSA issuer, kid of an ES key", k.sign(t, jose.HS256, "ec-1", k.hmac, k.claims(idp)), false, false, "algorithm HS256 not allowed"},
		{"RS256 to the HMAC issuer", k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims("internal")), false, false, "algorithm RS256 not allowed"},
		{"signed by a key not in the set", k.sign(t, jose.RS256, "rsa-1", k.other, k.claims(idp)), false, false, "bad signature"},
		{"unknown kid", k.sign(t, jose.RS256, "rsa-9", k.rsa, k.claims(idp)), false, false, `no RS256 key "rsa-9"`},
		{"kid of a key of another type", k.sign(t, jose.RS256, "ec-1", k.rsa, k.claims(idp)), false, false, `no RS256 key "ec-1"`},
		{"forged claims", func() string {
			parts := strings.Split(k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims(idp)), ".")
			c, _ := json.Marshal(k.claims(idp, func(c map[string]any) { c["sub"] = "admin" }))
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(c) + "." + parts[2]
		}(), false, false, "bad signature"},
		{"expired", k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims(idp, func(c map[string]any) { c["exp"] = k.t0.Add(-time.Minute).Unix() })), false, true, "token expired"},
		{"within leeway", k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims(idp, func(c map[string]any) { c["exp"] = k.t0.Add(-10 * time.Second).Unix() })), true, false, ""},
		{"no exp", k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims(idp, func(c map[string]any) { delete(c, "exp") })), false, false, "without exp"},
		{"not yet valid", k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims(idp, func(c map[string]any) { c["nbf"] = k.t0.Add(5 * time.Minute).Unix() })), false, false, "nbf"},
		{"other audience", k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims(idp, func(c map[string]any) { c["aud"] = "billing-api" })), false, false, "another audience"},
		{"untrusted issuer", k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims("https://evil.example")), false, false, "untrusted issuer"},
		{"too old for max_age", k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims(idp, func(c map[string]any) { c["iat"] = k.t0.Add(-2 * time.Hour).Unix() })), false, true, "max_age"},
		{"no iat where max_age applies", k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims(idp, func(c map[string]any) { delete(c, "iat") })), false, false, "without iat"},
		{"garbage", "not.a.token", false, false, "malformed"},
		{"huge", strings.Repeat("a", 20000), false, false, "longer than 16 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := v.Verify(tc.tok, k.t0)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tok.Subject != "alice" || len(tok.Scopes) != 2 {
					t.Errorf("token %+v", tok)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			te := err.(*tokenError)
			if te.expired != tc.expired || !strings.Contains(te.reason, tc.reason) {
				t.Errorf("refused with %q (expired %v), want %q (expired %v)", te.reason, te.expired, tc.reason, tc.expired)
			}
		})
	}
}

// TestJWTCacheKeepsCheckingTime: a token verified once is not trusted
// past its exp, nor past the cache's own time.
func TestJWTCacheKeepsCheckingTime(t *testing.T) {
	k := newIssuerKeys(t)
	v := testVerifier(t, k)
	tok := k.sign(t, jose.HS256, "", k.hmac, k.claims("internal"))
	if _, err := v.Verify(tok, k.t0); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.cache.get(sha256.Sum256([]byte(tok)), k.t0); !ok {
		t.Fatal("a verified token was not cached")
	}
	if _, err := v.Verify(tok, k.t0.Add(20*time.Minute)); err == nil || !err.(*tokenError).expired {
		t.Errorf("cached token after exp: %v", err)
	}
	if _, ok := v.cache.get(sha256.Sum256([]byte(tok)), k.t0.Add(2*tokenCacheTTL)); ok {
		t.Error("the cache trusts a token past its TTL")
	}
	// A forged token never enters the cache.
	forged := tok[:len(tok)-4] + "AAAA"
	if _, err := v.Verify(forged, k.t0); err == nil {
		t.Fatal("forged token accepted")
	}
	if _, ok := v.cache.get(sha256.Sum256([]byte(forged)), k.t0); ok {
		t.Error("a refused token was cached")
	}
}

func TestJWTConfigValidate(t *testing.T) {
	base := func() proxy.JWTConfig {
		c := proxy.DefaultJWTConfig()
		c.Issuers = []proxy.JWTIssuer{{Issuer: "a", Audience: []string{"x"}, Algorithms: []string{"RS256"}, JWKSFile: "k.json"}}
		return c
	}
	for _, tc := range []struct {
		mod  func(*proxy.JWTConfig)
		want string
	}{
		{func(c *proxy.JWTConfig) { c.Issuers[0].Algorithms = []string{"HS256", "RS256"} }, "key confusion"},
		{func(c *proxy.JWTConfig) { c.Issuers[0].Algorithms = []string{"none"} }, `"none"`},
		{func(c *proxy.JWTConfig) { c.Issuers[0].Audience = nil }, "audience: required"},
		{func(c *proxy.JWTConfig) { c.Issuers[0].JWKSURL = "https://idp/jwks" }, "exactly one"},
		{func(c *proxy.JWTConfig) { c.Issuers[0].JWKSFile, c.Issuers[0].JWKSURL = "", "http://idp.example/jwks" }, "want https"},
		{func(c *proxy.JWTConfig) { c.Issuers = append(c.Issuers, c.Issuers[0]) }, "appears twice"},
		{func(c *proxy.JWTConfig) { c.Issuers[0].Algorithms = []string{"HS256"} }, "needs secret_env"},
	} {
		c := base()
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
	if err := base().Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

// TestJWKSURLRefresh serves a JWKS over HTTP, rotates the key, and checks
// that a token with the new kid is accepted after an early refresh.
func TestJWKSURLRefresh(t *testing.T) {
	k := newIssuerKeys(t)
	var served atomic.Pointer[[]byte]
	served.Store(&k.jwks)
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_, _ = w.Write(*served.Load())
	}))
	defer srv.Close()
	cfg := proxy.DefaultJWTConfig()
	cfg.Issuers = []proxy.JWTIssuer{{Issuer: "idp", Audience: []string{"orders-api"}, Algorithms: []string{"RS256"}, JWKSURL: srv.URL, Refresh: time.Hour}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	v, err := NewJWTVerifier(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	done := make(chan error)
	go func() { done <- v.Run(ctx) }()
	defer func() { cancel(); <-done }()

	now := time.Now()
	k.t0 = now
	tok := k.sign(t, jose.RS256, "rsa-1", k.rsa, k.claims("idp"))
	waitUntil(t, func() bool { _, err := v.Verify(tok, now); return err == nil }, "first fetch")

	// The issuer rotates to a new key.
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.other.PublicKey, KeyID: "rsa-2", Use: "sig"}}})
	served.Store(&set)
	rotated := k.sign(t, jose.RS256, "rsa-2", k.other, k.claims("idp"))
	// The first use of the unknown kid asks for an early refresh (the
	// last fetch is older than 30 s at this clock).
	later := now.Add(time.Minute)
	waitUntil(t, func() bool { _, err := v.Verify(rotated, later); return err == nil }, "refresh on unknown kid")
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (start, and one early refresh)", n)
	}
}

func BenchmarkJWTVerify(b *testing.B) {
	k := newIssuerKeys(&testing.T{})
	v := testVerifier(&testing.T{}, k)
	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"HS256", k.sign(&testing.T{}, jose.HS256, "", k.hmac, k.claims("internal"))},
		{"ES256", k.sign(&testing.T{}, jose.ES256, "ec-1", k.ec, k.claims("https://idp.example"))},
		{"RS256", k.sign(&testing.T{}, jose.RS256, "rsa-1", k.rsa, k.claims("https://idp.example"))},
		{"EdDSA", k.sign(&testing.T{}, jose.EdDSA, "ed-1", k.ed, k.claims("https://idp.example"))},
	} {
		b.Run(tc.name+"/uncached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := v.verify(tc.tok, k.t0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/cached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tc.tok, k.t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
