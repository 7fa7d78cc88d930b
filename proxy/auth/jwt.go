package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/apiguard/apiguard/proxy"
)

// tokenError is a refused token, with the event's auth outcome and a
// reason for analysts.
type tokenError struct {
	expired bool
	reason  string
}

func (e *tokenError) Error() string { return e.reason }

// issuerKeys is one issuer's verification keys, swapped whole on refresh.
type issuerKeys struct {
	secret []byte
	set    *jose.JSONWebKeySet
}

type issuer struct {
	cfg     proxy.JWTIssuer
	algs    []jose.SignatureAlgorithm
	keys    atomic.Pointer[issuerKeys]
	refresh chan struct{} // a kid was missing: refresh early
	lastTry atomic.Int64
	dynamic func(time.Time) *jose.JSONWebKeySet // keys held elsewhere (AddIssuer)
}

// JWTVerifier verifies bearer tokens against the configured issuers. It is
// safe for concurrent use; Verify does no I/O. Issuers with a JWKS URL need
// Run to fetch and refresh their keys.
type JWTVerifier struct {
	issuers map[string]*issuer
	leeway  time.Duration
	client  *http.Client
	log     *slog.Logger
	cache   tokenCache
}

// tokenCacheTTL is how long a verified token is trusted without checking
// its signature again (its time claims are checked on every use). A key
// withdrawn from an issuer's JWKS stops verifying new tokens at once and
// cached ones within this time; revocations apply at once, as the
// enforcement check runs first.
const tokenCacheTTL = time.Minute

// tokenCache remembers verified tokens by their SHA-256, bounded per
// shard (a full shard is emptied: the next uses verify again).
type tokenCache struct {
	shards [16]struct {
		mu sync.Mutex
		m  map[[32]byte]cachedToken
	}
}

type cachedToken struct {
	tok        *proxy.Token
	exp, nbf   time.Time
	iat        time.Time // zero: none
	maxAge     time.Duration
	trustUntil time.Time
}

const tokenCacheShardSize = 4096

func (c *tokenCache) get(sum [32]byte, now time.Time) (cachedToken, bool) {
	s := &c.shards[sum[0]%16]
	s.mu.Lock()
	e, ok := s.m[sum]
	s.mu.Unlock()
	return e, ok && now.Before(e.trustUntil)
}

func (c *tokenCache) put(sum [32]byte, e cachedToken) {
	s := &c.shards[sum[0]%16]
	s.mu.Lock()
	if s.m == nil || len(s.m) >= tokenCacheShardSize {
		s.m = make(map[[32]byte]cachedToken, 64)
	}
	s.m[sum] = e
	s.mu.Unlock()
}

// NewJWTVerifier reads secrets and JWKS files; cfg must be valid. URL key
// sets stay empty until Run fetches them.
func NewJWTVerifier(cfg proxy.JWTConfig, log *slog.Logger) (*JWTVerifier, error) {
	v := &JWTVerifier{issuers: map[string]*issuer{}, leeway: cfg.Leeway, log: log,
		client: &http.Client{Timeout: 10 * time.Second}}
	for i, c := range cfg.Issuers {
		is := &issuer{cfg: c, refresh: make(chan struct{}, 1)}
		for _, a := range c.Algorithms {
			is.algs = append(is.algs, jose.SignatureAlgorithm(a))
		}
		switch {
		case c.SecretEnv != "":
			s := os.Getenv(c.SecretEnv)
			if len(s) < 32 {
				return nil, fmt.Errorf("proxy.auth.jwt.issuers[%d].secret_env: $%s holds %d bytes, want at least 32", i, c.SecretEnv, len(s))
			}
			is.keys.Store(&issuerKeys{secret: []byte(s)})
		case c.JWKSFile != "":
			data, err := os.ReadFile(c.JWKSFile)
			if err != nil {
				return nil, fmt.Errorf("proxy.auth.jwt.issuers[%d].jwks_file: %w", i, err)
			}
			set, err := parseJWKS(data)
			if err != nil {
				return nil, fmt.Errorf("proxy.auth.jwt.issuers[%d].jwks_file %s: %w", i, c.JWKSFile, err)
			}
			is.keys.Store(&issuerKeys{set: set})
		default:
			is.keys.Store(&issuerKeys{set: &jose.JSONWebKeySet{}})
		}
		v.issuers[c.Issuer] = is
	}
	return v, nil
}

// AddIssuer trusts keys held elsewhere in the process (the proxy's own
// token signer): keys is consulted on every verification.
func (v *JWTVerifier) AddIssuer(cfg proxy.JWTIssuer, keys func(now time.Time) *jose.JSONWebKeySet) {
	is := &issuer{cfg: cfg, refresh: make(chan struct{}, 1)}
	for _, a := range cfg.Algorithms {
		is.algs = append(is.algs, jose.SignatureAlgorithm(a))
	}
	is.keys.Store(&issuerKeys{set: &jose.JSONWebKeySet{}})
	is.dynamic = keys
	v.issuers[cfg.Issuer] = is
}

// parseJWKS reads a key set and keeps only public signing keys.
func parseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("parsing JWKS: %w", err)
	}
	out := &jose.JSONWebKeySet{}
	for i, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("JWKS key %d (%q) is private or symmetric; publish public keys only", i, k.KeyID)
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		out.Keys = append(out.Keys, k)
	}
	if len(out.Keys) == 0 {
		return nil, errors.New("JWKS holds no signing key")
	}
	return out, nil
}

// Run fetches the JWKS of URL issuers, then refreshes each every Refresh
// (default 5 minutes), and early (at most every 30 s) when a token names
// a kid the set lacks. A failed fetch keeps the last good set. It returns
// when ctx ends.
func (v *JWTVerifier) Run(ctx context.Context) error {
	done := make(chan struct{})
	n := 0
	for _, is := range v.issuers {
		if is.cfg.JWKSURL == "" {
			continue
		}
		n++
		go func() {
			defer func() { done <- struct{}{} }()
			v.watch(ctx, is)
		}()
	}
	for range n {
		<-done
	}
	return nil
}

func (v *JWTVerifier) watch(ctx context.Context, is *issuer) {
	every := is.cfg.Refresh
	if every == 0 {
		every = 5 * time.Minute
	}
	for {
		if err := v.fetch(ctx, is); err != nil && ctx.Err() == nil {
			v.log.Warn("fetching JWKS failed; keeping the last key set", "issuer", is.cfg.Issuer, "url", is.cfg.JWKSURL, "err", err)
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-is.refresh:
			t.Stop()
		}
	}
}

func (v *JWTVerifier) fetch(ctx context.Context, is *issuer) error {
	// Never backwards: an early refresh may have set it from a token's
	// clock ahead of this one.
	for t := time.Now().UnixNano(); ; {
		last := is.lastTry.Load()
		if last >= t || is.lastTry.CompareAndSwap(last, t) {
			break
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, is.cfg.JWKSURL, nil)
	if err != nil {
		return err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading JWKS: %w", err)
	}
	set, err := parseJWKS(data)
	if err != nil {
		return err
	}
	is.keys.Store(&issuerKeys{set: set})
	return nil
}

// maxTokenBytes bounds the tokens parsed.
const maxTokenBytes = 16 << 10

// Verify checks a compact JWS token: an algorithm the issuer allows (never
// "none"), a signature by one of the issuer's keys of the matching type,
// iss, aud, exp (required), nbf, and iat against max_age, at now.
func (v *JWTVerifier) Verify(raw string, now time.Time) (*proxy.Token, error) {
	if len(raw) > maxTokenBytes {
		return nil, &tokenError{reason: "token longer than 16 KiB"}
	}
	sum := sha256.Sum256([]byte(raw))
	if e, ok := v.cache.get(sum, now); ok {
		return e.check(now, v.leeway)
	}
	tok, e, err := v.verify(raw, now)
	if err != nil {
		return nil, err
	}
	v.cache.put(sum, e)
	return tok, nil
}

// check applies a cached token's time claims at now.
func (e cachedToken) check(now time.Time, leeway time.Duration) (*proxy.Token, error) {
	switch {
	case now.After(e.exp.Add(leeway)):
		return nil, &tokenError{expired: true, reason: "token expired at " + e.exp.UTC().Format(time.RFC3339)}
	case now.Add(leeway).Before(e.nbf):
		return nil, &tokenError{reason: "claims: token not valid yet (nbf)"}
	case e.maxAge > 0 && now.Sub(e.iat) > e.maxAge+leeway:
		return nil, &tokenError{expired: true, reason: fmt.Sprintf("token issued %s ago, max_age %s", now.Sub(e.iat).Round(time.Second), e.maxAge)}
	}
	return e.tok, nil
}

// verify is Verify without the cache; it also returns the cache entry.
func (v *JWTVerifier) verify(raw string, now time.Time) (*proxy.Token, cachedToken, error) {
	var none cachedToken
	var unverified struct {
		Iss string `json:"iss"`
	}
	// Parse once with every algorithm any issuer allows, to read iss;
	// the issuer's own list is enforced below.
	tok, err := jwt.ParseSigned(raw, allAlgs)
	if err != nil {
		return nil, none, &tokenError{reason: "malformed token: " + clip(err.Error(), 200)}
	}
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, none, &tokenError{reason: "malformed claims"}
	}
	is := v.issuers[unverified.Iss]
	if is == nil {
		return nil, none, &tokenError{reason: "untrusted issuer " + clip(strconv.Quote(unverified.Iss), 100)}
	}
	if len(tok.Headers) != 1 {
		return nil, none, &tokenError{reason: "token with several signatures"}
	}
	h := tok.Headers[0]
	alg := jose.SignatureAlgorithm(h.Algorithm)
	if !slices.Contains(is.algs, alg) {
		return nil, none, &tokenError{reason: "algorithm " + clip(h.Algorithm, 20) + " not allowed for issuer " + is.cfg.Issuer}
	}
	key, err := v.key(is, alg, h.KeyID, now)
	if err != nil {
		return nil, none, err
	}
	var (
		std   jwt.Claims
		extra map[string]any
	)
	if err := tok.Claims(key, &std, &extra); err != nil {
		return nil, none, &tokenError{reason: "bad signature"}
	}
	if std.Expiry == nil {
		return nil, none, &tokenError{reason: "token without exp"}
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: is.cfg.Issuer, AnyAudience: is.cfg.Audience, Time: now}, v.leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return nil, none, &tokenError{expired: true, reason: "token expired at " + std.Expiry.Time().UTC().Format(time.RFC3339)}
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, none, &tokenError{reason: "token for another audience"}
	case err != nil:
		return nil, none, &tokenError{reason: "claims: " + strings.TrimPrefix(err.Error(), "go-jose/go-jose/jwt: validation failed, ")}
	}
	if is.cfg.MaxAge > 0 {
		if std.IssuedAt == nil {
			return nil, none, &tokenError{reason: "token without iat where max_age applies"}
		}
		if age := now.Sub(std.IssuedAt.Time()); age > is.cfg.MaxAge+v.leeway {
			return nil, none, &tokenError{expired: true, reason: fmt.Sprintf("token issued %s ago, max_age %s", age.Round(time.Second), is.cfg.MaxAge)}
		}
	}
	t := &proxy.Token{Issuer: std.Issuer, Subject: std.Subject, ID: std.ID, Scopes: scopesOf(extra), Claims: extra}
	e := cachedToken{tok: t, exp: std.Expiry.Time(), maxAge: is.cfg.MaxAge, trustUntil: now.Add(tokenCacheTTL)}
	if std.NotBefore != nil {
		e.nbf = std.NotBefore.Time()
	}
	if std.IssuedAt != nil {
		e.iat = std.IssuedAt.Time()
	}
	return t, e, nil
}

var allAlgs = []jose.SignatureAlgorithm{jose.HS256, jose.RS256, jose.ES256, jose.EdDSA}

// key picks the verification key for alg and kid. A JWKS key is used only
// with the algorithm its type implies, so an RSA public key can never be
// used as an HMAC secret.
func (v *JWTVerifier) key(is *issuer, alg jose.SignatureAlgorithm, kid string, now time.Time) (any, error) {
	ks := is.keys.Load()
	if alg == jose.HS256 {
		return ks.secret, nil
	}
	set := ks.set
	if is.dynamic != nil {
		set = is.dynamic(now)
	}
	var cands []jose.JSONWebKey
	if kid != "" {
		cands = set.Key(kid)
	} else {
		cands = set.Keys
	}
	for _, k := range cands {
		if keyFits(k, alg) {
			return k.Key, nil
		}
	}
	// One early refresh per 30 s on the caller's clock: the request itself
	// moves lastTry, so the tokens that arrive while it is in flight do
	// not queue another; none before the first fetch has begun (lastTry
	// 0), which Run makes at once anyway.
	if last := is.lastTry.Load(); kid != "" && is.cfg.JWKSURL != "" && last != 0 && now.UnixNano()-last > int64(30*time.Second) &&
		is.lastTry.CompareAndSwap(last, now.UnixNano()) {
		select {
		case is.refresh <- struct{}{}:
		default:
		}
	}
	return nil, &tokenError{reason: "no " + string(alg) + " key " + clip(strconv.Quote(kid), 80) + " for issuer " + is.cfg.Issuer}
}

func keyFits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return alg == jose.RS256 && pub.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && pub.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// scopesOf reads OAuth scopes: "scope" as a space-separated string (RFC
// 8693), or "scp" as a list or string.
func scopesOf(claims map[string]any) []string {
	var out []string
	add := func(v any) {
		switch s := v.(type) {
		case string:
			out = append(out, strings.Fields(s)...)
		case []any:
			for _, e := range s {
				if str, ok := e.(string); ok {
					out = append(out, str)
				}
			}
		}
	}
	add(claims["scope"])
	add(claims["scp"])
	return out
}
