// Package auth holds the proxy's credential checks: API keys (a key store
// of hashed secrets with plans and scopes), JWT bearer tokens (trusted
// issuers, HS256 secrets or JWKS files and URLs refreshed in the
// background), HMAC request signatures (with a nonce cache against
// replays), client certificates, and the proxy's own short-lived tokens
// (TokenService, issued for a siteverify attestation and bound to the
// client). It also holds the vault, where signing secrets and upstream
// credentials are sealed under a master key, and the Injector that sets
// those credentials on the upstream leg (proxy.Injector). Auth and
// TokenService implement proxy.Check. Their configuration is part of
// proxy.Config (proxy.AuthConfig, proxy.TokensConfig,
// proxy.SecretsConfig); proxy/chain builds the checks and places them in
// the chain. A verified token is left on the exchange as proxy.Token.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// AuthName is the name of the authentication check in events.
const AuthName = "auth"

// AuthDeps are what the auth check verifies with.
type AuthDeps struct {
	JWT    *JWTVerifier // nil: bearer tokens only name principals
	Vault  *Vault       // signing secrets
	Nonces *NonceCache  // required with signatures
	// MaxBody bounds the body read to verify a signature (per route).
	MaxBody func(api string) int64
}

// Auth verifies whatever credentials a request presents: API keys (id
// and secret against the store, in constant time), JWT bearer tokens,
// HMAC request signatures and client certificates; then the route's
// requirement and scopes. A credential that is presented is verified
// wherever it is sent: a wrong key or a forged token is refused even on a
// route that requires none. A credential kind with nothing to verify it
// against (no key store, no issuers) only names the principal, as it does
// for detection.
type Auth struct {
	cfg     proxy.AuthConfig
	keys    map[string]*APIKey // nil: no key store
	header  string
	dummy   []byte
	jwt     *JWTVerifier
	secrets map[string][]byte // key id → signing secret
	nonces  *NonceCache
	maxBody func(string) int64
}

// NewAuth loads the key store and the signing secrets; cfg must be valid.
// header is the header that carries keys (proxy.api_key_header).
func NewAuth(cfg proxy.AuthConfig, header string, deps AuthDeps) (*Auth, error) {
	a := &Auth{cfg: cfg, header: header, dummy: make([]byte, sha256.Size), jwt: deps.JWT, nonces: deps.Nonces, maxBody: deps.MaxBody}
	if a.maxBody == nil {
		a.maxBody = func(string) int64 { return 1 << 20 }
	}
	if cfg.KeysFile != "" {
		keys, err := LoadKeys(cfg.KeysFile)
		if err != nil {
			return nil, err
		}
		a.keys = keys
	}
	if cfg.Signatures.Enabled {
		if deps.Vault == nil {
			return nil, fmt.Errorf("proxy.auth.signatures: signing secrets live in the vault; set proxy.secrets.vault_file")
		}
		if a.nonces == nil {
			return nil, fmt.Errorf("proxy.auth.signatures: no nonce cache")
		}
		a.secrets = map[string][]byte{}
		for _, s := range deps.Vault.Secrets {
			id, ok := strings.CutPrefix(s.Name, signingPrefix)
			if !ok {
				continue
			}
			if a.keys[id] == nil {
				return nil, fmt.Errorf("vault secret %s: key %q is not in proxy.auth.keys_file", s.Name, id)
			}
			plain, err := deps.Vault.Open(s.Name)
			if err != nil {
				return nil, err
			}
			a.secrets[id] = plain
		}
	}
	return a, nil
}

// Name implements proxy.Check.
func (*Auth) Name() string { return AuthName }

func unauthorized(auth event.AuthOutcome, challenge, detail, reason string) *proxy.Denial {
	return &proxy.Denial{Status: http.StatusUnauthorized, Detail: detail, Decision: event.Decision_DECISION_BLOCK,
		Auth: auth, Reason: reason, Headers: http.Header{"Www-Authenticate": {challenge}}}
}

const (
	keyChallenge    = `ApiKey realm="apiguard"`
	bearerChallenge = `Bearer realm="apiguard"`
	sigChallenge    = `Signature realm="apiguard"`
)

// Check implements proxy.Check.
func (a *Auth) Check(x *proxy.Exchange) *proxy.Denial {
	route := a.cfg.Routes[x.API]
	require := a.cfg.Default
	if route.Require != "" {
		require = route.Require
	}
	var (
		verified []string
		granted  []string
	)
	if a.keys != nil && a.header != "" {
		if raw := x.Req.Header.Get(a.header); raw != "" {
			key, d := a.apiKey(x, raw)
			if d != nil {
				return d
			}
			verified, granted = append(verified, proxy.RequireAPIKey), append(granted, key.Scopes...)
		}
	}
	if a.jwt != nil && len(a.jwt.issuers) > 0 {
		if raw, ok := proxy.Bearer(x.Req.Header.Get("Authorization")); ok {
			tok, err := x.Token, error(nil) // the tokens check may have verified it
			if tok == nil {
				tok, err = a.jwt.Verify(raw, x.Now)
			}
			if err != nil {
				te, _ := err.(*tokenError)
				outcome := event.AuthOutcome_AUTH_INVALID
				if te != nil && te.expired {
					outcome = event.AuthOutcome_AUTH_EXPIRED
				}
				return unauthorized(outcome, bearerChallenge+`, error="invalid_token"`, "The bearer token is not valid.", "token: "+err.Error())
			}
			x.Token = tok
			verified, granted = append(verified, proxy.RequireJWT), append(granted, tok.Scopes...)
		}
	}
	if a.secrets != nil {
		if raw := x.Req.Header.Get(a.cfg.Signatures.Header); raw != "" {
			key, d := a.signature(x, raw)
			if d != nil {
				return d
			}
			verified, granted = append(verified, proxy.RequireSignature), append(granted, key.Scopes...)
		}
	}
	if x.Creds.Cert != "" {
		verified = append(verified, proxy.RequireMTLS)
	}
	if len(verified) > 0 {
		x.Event.Auth = event.AuthOutcome_AUTH_OK
	}
	switch {
	case require == proxy.RequireNone:
	case require == proxy.RequireAny && len(verified) > 0:
	case slices.Contains(verified, require):
	default:
		challenge := map[string]string{proxy.RequireAPIKey: keyChallenge, proxy.RequireJWT: bearerChallenge, proxy.RequireSignature: sigChallenge,
			proxy.RequireAny: bearerChallenge, proxy.RequireMTLS: `Mutual realm="apiguard"`}[require]
		return unauthorized(event.AuthOutcome_AUTH_MISSING, challenge, "Credentials are required.", "no "+require+" credential")
	}
	for _, s := range route.Scopes {
		if !slices.Contains(granted, s) {
			return &proxy.Denial{Status: http.StatusForbidden, Detail: "The credentials lack a scope this API requires.",
				Decision: event.Decision_DECISION_BLOCK, Auth: event.AuthOutcome_AUTH_OK,
				Reason: "credential (" + strings.Join(verified, ",") + ") lacks scope " + s}
		}
	}
	return nil
}

// apiKey verifies "<id>.<secret>" against the store.
func (a *Auth) apiKey(x *proxy.Exchange, raw string) (*APIKey, *proxy.Denial) {
	id, secret, _ := strings.Cut(raw, ".")
	key := a.keys[id]
	want := a.dummy
	if key != nil {
		want = key.hash
	}
	// Always hash and compare, so an unknown id takes as long as a wrong
	// secret.
	sum := sha256.Sum256([]byte(secret))
	match := subtle.ConstantTimeCompare(sum[:], want) == 1
	switch {
	case key == nil || !match || secret == "":
		return nil, unauthorized(event.AuthOutcome_AUTH_INVALID, keyChallenge, "The API key is not valid.", "invalid API key "+clip(x.Creds.KeyID, 64))
	case key.Disabled:
		return nil, unauthorized(event.AuthOutcome_AUTH_REVOKED, keyChallenge, "The API key is not valid.", "disabled API key "+key.ID)
	case !key.Expires.IsZero() && !x.Now.Before(key.Expires):
		return nil, unauthorized(event.AuthOutcome_AUTH_EXPIRED, keyChallenge, "The API key has expired.", "expired API key "+key.ID)
	}
	x.Plan = key.Plan
	return key, nil
}

// signature verifies an HMAC request signature and refuses a replayed
// nonce.
func (a *Auth) signature(x *proxy.Exchange, raw string) (*APIKey, *proxy.Denial) {
	bad := func(reason string) *proxy.Denial {
		return unauthorized(event.AuthOutcome_AUTH_INVALID, sigChallenge, "The request signature is not valid.", reason)
	}
	p, err := ParseSignature(raw)
	if err != nil {
		return nil, bad(err.Error())
	}
	key, secret := a.keys[p.KeyID], a.secrets[p.KeyID]
	if key == nil || secret == nil {
		return nil, bad("signature by unknown key " + clip(p.KeyID, 64))
	}
	if reason, ok := verifySignature(x, p, secret, a.cfg.Signatures, a.maxBody(x.API)); !ok {
		return nil, bad(reason)
	}
	switch {
	case key.Disabled:
		return nil, unauthorized(event.AuthOutcome_AUTH_REVOKED, sigChallenge, "The request signature is not valid.", "disabled key "+key.ID)
	case !key.Expires.IsZero() && !x.Now.Before(key.Expires):
		return nil, unauthorized(event.AuthOutcome_AUTH_EXPIRED, sigChallenge, "The signing key has expired.", "expired key "+key.ID)
	}
	fresh, err := a.nonces.Add(p.KeyID+"\x00"+p.Nonce, x.Now, 2*a.cfg.Signatures.Skew)
	if err != nil {
		return nil, &proxy.Denial{Status: http.StatusServiceUnavailable, Detail: "Signed requests cannot be accepted right now.",
			Decision: event.Decision_DECISION_THROTTLE, Reason: "nonce cache full; refusing signatures until nonces expire",
			Headers: http.Header{"Retry-After": {"5"}}}
	}
	if !fresh {
		return nil, bad("replayed nonce for key " + p.KeyID)
	}
	if x.Event.ApiKeyId == "" {
		x.Event.ApiKeyId, x.Creds.KeyID = key.ID, key.ID
	}
	x.Plan = key.Plan
	return key, nil
}

// Interface guards
var _ proxy.Check = (*Auth)(nil)

// clip is valid UTF-8, at most n bytes, as the proxy writes event strings.
func clip(s string, n int) string { return event.Clip(event.ValidUTF8(s), n) }
