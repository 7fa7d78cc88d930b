package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/secret"
)

// The configuration of the credential checks that live in proxy/auth (API
// keys, JWT, signatures, proxy tokens and siteverify, vault and
// injection): it is part of Config, which proxy/auth reads, so it stays
// here.

// Credential kinds a route may require.
const (
	RequireNone      = "none"
	RequireAPIKey    = "api_key"
	RequireJWT       = "jwt"
	RequireSignature = "signature"
	RequireMTLS      = "mtls"
	RequireAny       = "any" // any verified credential
)

var requireKinds = []string{RequireNone, RequireAPIKey, RequireJWT, RequireSignature, RequireMTLS, RequireAny}

// AuthConfig says how credentials are verified and what each route
// requires. Routes not listed require Default.
type AuthConfig struct {
	// KeysFile is the API key store (see auth.APIKey); "" for none.
	KeysFile   string               `yaml:"keys_file"`
	Default    string               `yaml:"default"`
	Routes     map[string]RouteAuth `yaml:"routes"`
	JWT        JWTConfig            `yaml:"jwt"`
	Signatures SignatureConfig      `yaml:"signatures"`
}

// RouteAuth is one route's requirement.
type RouteAuth struct {
	// Require is none, api_key, jwt, signature, mtls or any.
	Require string `yaml:"require"`
	// Scopes must all be granted to the verified credential, or 403.
	Scopes []string `yaml:"scopes"`
}

// DefaultAuthConfig requires nothing.
func DefaultAuthConfig() AuthConfig {
	return AuthConfig{Default: RequireNone, JWT: DefaultJWTConfig(), Signatures: DefaultSignatureConfig()}
}

// Validate reports the first bad field by its config key. proxyTokens
// says whether the proxy issues tokens of its own (an issuer for jwt
// routes).
func (c AuthConfig) Validate(proxyTokens bool) error {
	can := func(kind string) error {
		switch kind {
		case RequireAPIKey:
			if c.KeysFile == "" {
				return fmt.Errorf("api_key needs proxy.auth.keys_file")
			}
		case RequireJWT:
			if len(c.JWT.Issuers) == 0 && !proxyTokens {
				return fmt.Errorf("jwt needs proxy.auth.jwt.issuers or proxy.tokens")
			}
		case RequireSignature:
			if !c.Signatures.Enabled || c.KeysFile == "" {
				return fmt.Errorf("signature needs proxy.auth.signatures.enabled and proxy.auth.keys_file")
			}
		}
		return nil
	}
	req := func(key, v string) error {
		if !slices.Contains(requireKinds, v) {
			return fmt.Errorf("%s: %q, want one of %s", key, v, strings.Join(requireKinds, ", "))
		}
		if err := can(v); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	}
	if err := req("proxy.auth.default", c.Default); err != nil {
		return err
	}
	for r, a := range c.Routes {
		if a.Require == "" {
			a.Require = c.Default
		}
		if err := req(fmt.Sprintf("proxy.auth.routes[%q].require", r), a.Require); err != nil {
			return err
		}
	}
	if err := c.JWT.Validate(); err != nil {
		return err
	}
	return c.Signatures.Validate()
}

// JWTConfig lists the token issuers the proxy trusts.
type JWTConfig struct {
	Issuers []JWTIssuer `yaml:"issuers"`
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration `yaml:"leeway"`
}

// JWTIssuer is one trusted issuer. Its algorithms are either HS256 alone
// (a shared secret) or asymmetric ones (keys from a JWKS file or URL), never
// both: a verifier that accepts both can be fooled into checking an HMAC
// made with a public key (key confusion).
type JWTIssuer struct {
	// Issuer must equal the token's iss.
	Issuer string `yaml:"issuer"`
	// Audience: the token's aud must name one of these.
	Audience []string `yaml:"audience"`
	// Algorithms accepted: HS256, or any of RS256, ES256, EdDSA.
	Algorithms []string `yaml:"algorithms"`
	// SecretEnv names the environment variable holding the HS256 secret.
	SecretEnv string `yaml:"secret_env"`
	// JWKSFile or JWKSURL give the public keys; a URL is fetched at start
	// and every Refresh, and early when a token names an unknown kid.
	JWKSFile string        `yaml:"jwks_file"`
	JWKSURL  string        `yaml:"jwks_url"`
	Refresh  time.Duration `yaml:"refresh"`
	// MaxAge refuses tokens issued (iat) longer ago than this; 0 for no
	// limit. With it, tokens without iat are refused.
	MaxAge time.Duration `yaml:"max_age"`
}

// DefaultJWTConfig trusts no issuer.
func DefaultJWTConfig() JWTConfig { return JWTConfig{Leeway: 30 * time.Second} }

var asymmetricAlgs = []string{"RS256", "ES256", "EdDSA"}

// Validate reports the first bad field by its config key.
func (c JWTConfig) Validate() error {
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		return fmt.Errorf("proxy.auth.jwt.leeway: %s, want 0 to 5m", c.Leeway)
	}
	seen := map[string]bool{}
	for i, is := range c.Issuers {
		key := fmt.Sprintf("proxy.auth.jwt.issuers[%d]", i)
		switch {
		case is.Issuer == "":
			return fmt.Errorf("%s.issuer: required", key)
		case seen[is.Issuer]:
			return fmt.Errorf("%s.issuer: %q appears twice", key, is.Issuer)
		case len(is.Audience) == 0:
			return fmt.Errorf("%s.audience: required (a token for another service must not pass here)", key)
		case len(is.Algorithms) == 0:
			return fmt.Errorf("%s.algorithms: required", key)
		case is.MaxAge < 0 || is.Refresh < 0:
			return fmt.Errorf("%s: max_age and refresh must not be negative", key)
		}
		seen[is.Issuer] = true
		hmac := slices.Contains(is.Algorithms, "HS256")
		for _, a := range is.Algorithms {
			if a != "HS256" && !slices.Contains(asymmetricAlgs, a) {
				return fmt.Errorf("%s.algorithms: %q, want HS256, RS256, ES256 or EdDSA", key, a)
			}
			if hmac && a != "HS256" {
				return fmt.Errorf("%s.algorithms: HS256 with %s invites key confusion; use two issuers", key, a)
			}
		}
		sources := 0
		for _, s := range []string{is.SecretEnv, is.JWKSFile, is.JWKSURL} {
			if s != "" {
				sources++
			}
		}
		switch {
		case sources != 1:
			return fmt.Errorf("%s: set exactly one of secret_env, jwks_file and jwks_url", key)
		case hmac && is.SecretEnv == "":
			return fmt.Errorf("%s: HS256 needs secret_env", key)
		case !hmac && is.SecretEnv != "":
			return fmt.Errorf("%s: secret_env is for HS256 only", key)
		case is.JWKSURL != "" && secret.HasCredentials(is.JWKSURL):
			return fmt.Errorf("%s.jwks_url: %q: credentials in the URL are refused (a key set is public)", key, secret.URL(is.JWKSURL))
		case is.JWKSURL != "" && !strings.HasPrefix(is.JWKSURL, "https://") && !strings.HasPrefix(is.JWKSURL, "http://127.0.0.1") &&
			!strings.HasPrefix(is.JWKSURL, "http://localhost"):
			return fmt.Errorf("%s.jwks_url: %q, want https (plain http only on loopback)", key, secret.URL(is.JWKSURL))
		}
	}
	return nil
}

// SignatureConfig configures HMAC-SHA256 request signing. A client signs
// the canonical form of its request (see auth.CanonicalRequest) with a secret
// it shares with the proxy; the proxy holds that secret sealed in the
// vault as "signing/<keyId>", and the key id names the consumer in the API
// key store (plan and scopes).
type SignatureConfig struct {
	Enabled bool `yaml:"enabled"`
	// Header carries the signature (default Apiguard-Signature).
	Header string `yaml:"header"`
	// Skew is how far a signature's timestamp may be from the proxy's
	// clock, either way (default 5m). Nonces are remembered twice as long.
	Skew time.Duration `yaml:"skew"`
	// SignedHeaders must all be among the headers a signature covers
	// (default host).
	SignedHeaders []string `yaml:"signed_headers"`
	// MaxNonces bounds the nonce cache (default 1,000,000); when it is
	// full of live nonces, signed requests are refused until some expire.
	MaxNonces int `yaml:"max_nonces"`
}

// DefaultSignatureConfig has signing off.
func DefaultSignatureConfig() SignatureConfig {
	return SignatureConfig{Header: "Apiguard-Signature", Skew: 5 * time.Minute, SignedHeaders: []string{"host"}, MaxNonces: 1_000_000}
}

// Validate reports the first bad field by its config key.
func (c SignatureConfig) Validate() error {
	switch {
	case c.Header == "":
		return errors.New("proxy.auth.signatures.header: required")
	case c.Skew < time.Second || c.Skew > time.Hour:
		return fmt.Errorf("proxy.auth.signatures.skew: %s, want 1s to 1h", c.Skew)
	case c.MaxNonces < 1000:
		return fmt.Errorf("proxy.auth.signatures.max_nonces: %d, want at least 1000", c.MaxNonces)
	}
	return nil
}

// TokensConfig configures short-lived proxy tokens: a browser or app
// exchanges an attestation (a CAPTCHA or challenge answer) for a token
// valid a few minutes, bound to its origin and client fingerprint, and
// presents it as a bearer token; a valid token can be exchanged for one
// with fewer scopes. Routes ask for them with auth require "jwt".
type TokensConfig struct {
	Enabled bool `yaml:"enabled"`
	// Issuer and Audience are the tokens' iss and aud.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// TTL is a token's lifetime (at most 10m); Rotate the signing key's.
	TTL    time.Duration `yaml:"ttl"`
	Rotate time.Duration `yaml:"rotate"`
	// SeedSecret is the vault secret the signing keys derive from.
	SeedSecret string `yaml:"seed_secret"`
	// Scopes are granted to tokens issued for an attestation.
	Scopes []string `yaml:"scopes"`
	// Endpoint paths, answered by the proxy itself.
	Path         string           `yaml:"path"`
	ExchangePath string           `yaml:"exchange_path"`
	JWKSPath     string           `yaml:"jwks_path"`
	SiteVerify   SiteVerifyConfig `yaml:"siteverify"`
}

// DefaultTokensConfig has proxy tokens off.
func DefaultTokensConfig() TokensConfig {
	return TokensConfig{
		Issuer: "apiguard", Audience: "apiguard-proxy", TTL: 5 * time.Minute, Rotate: time.Hour,
		SeedSecret: "tokens/seed", Path: "/.apiguard/token", ExchangePath: "/.apiguard/token/exchange",
		JWKSPath:   "/.well-known/apiguard/jwks.json",
		SiteVerify: SiteVerifyConfig{MinScore: 0.5, Timeout: 5 * time.Second},
	}
}

// Validate reports the first bad field by its config key.
func (c TokensConfig) Validate(secrets SecretsConfig) error {
	if !c.Enabled {
		return nil
	}
	switch {
	case c.Issuer == "" || c.Audience == "":
		return errors.New("proxy.tokens: issuer and audience are required")
	case c.TTL < 10*time.Second || c.TTL > 10*time.Minute:
		return fmt.Errorf("proxy.tokens.ttl: %s, want 10s to 10m", c.TTL)
	case c.Rotate < c.TTL:
		return fmt.Errorf("proxy.tokens.rotate: %s, want at least the ttl (%s)", c.Rotate, c.TTL)
	case secrets.VaultFile == "":
		return errors.New("proxy.tokens: the signing seed lives in the vault; set proxy.secrets.vault_file")
	}
	for key, p := range map[string]string{"path": c.Path, "exchange_path": c.ExchangePath, "jwks_path": c.JWKSPath} {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("proxy.tokens.%s: %q, want an absolute path", key, p)
		}
	}
	return c.SiteVerify.Validate()
}

// SiteVerifyConfig configures the siteverify protocol that Google
// reCAPTCHA v3 and Cloudflare Turnstile share: POST secret, response and
// remoteip as a form; a JSON answer with success, score (reCAPTCHA),
// action, hostname and error-codes.
type SiteVerifyConfig struct {
	URL       string        `yaml:"url"`
	SecretEnv string        `yaml:"secret_env"`
	MinScore  float64       `yaml:"min_score"`
	Hostnames []string      `yaml:"hostnames"` // allowed; empty for any
	Action    string        `yaml:"action"`    // required action; "" for any
	Timeout   time.Duration `yaml:"timeout"`
}

// Validate reports the first bad field by its config key.
func (c SiteVerifyConfig) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))):
		return fmt.Errorf("proxy.tokens.siteverify.url: %q, want https (plain http only on loopback)", secret.URL(c.URL))
	case u.User != nil:
		return fmt.Errorf("proxy.tokens.siteverify.url: %q: credentials in the URL are refused (the secret is read from secret_env)", secret.URL(c.URL))
	case c.SecretEnv == "":
		return errors.New("proxy.tokens.siteverify.secret_env: required")
	case c.MinScore < 0 || c.MinScore > 1:
		return fmt.Errorf("proxy.tokens.siteverify.min_score: %g, want 0 to 1", c.MinScore)
	case c.Timeout <= 0:
		return errors.New("proxy.tokens.siteverify.timeout: must be positive")
	}
	return nil
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// SecretsConfig configures the secret vault and what is injected from it
// on the way upstream.
type SecretsConfig struct {
	// VaultFile is the sealed store (see auth.Vault); "" for none.
	VaultFile string `yaml:"vault_file"`
	// MasterKeyEnv names the environment variable with the master key;
	// MasterKeyFile, when set, is read instead.
	MasterKeyEnv  string `yaml:"master_key_env"`
	MasterKeyFile string `yaml:"master_key_file"`
	// Inject lists upstream credentials to add.
	Inject []Injection `yaml:"inject"`
}

// Injection adds one header with a secret to upstream requests. Whatever
// the client sent under that header is removed first, on every route.
type Injection struct {
	// Routes are the route templates it applies to; empty for all.
	Routes []string `yaml:"routes"`
	Header string   `yaml:"header"`
	Secret string   `yaml:"secret"`
	// Format places the secret: "{secret}" (default), e.g. "Bearer {secret}".
	Format string `yaml:"format"`
}

// DefaultSecretsConfig has no vault; the master key comes from
// $APIGUARD_MASTER_KEY.
func DefaultSecretsConfig() SecretsConfig { return SecretsConfig{MasterKeyEnv: "APIGUARD_MASTER_KEY"} }

// Validate reports the first bad field by its config key.
func (c SecretsConfig) Validate(routes []string) error {
	if len(c.Inject) > 0 && c.VaultFile == "" {
		return fmt.Errorf("proxy.secrets.inject: needs proxy.secrets.vault_file")
	}
	for i, in := range c.Inject {
		key := fmt.Sprintf("proxy.secrets.inject[%d]", i)
		switch {
		case in.Header == "" || strings.ContainsAny(in.Header, " :\r\n"):
			return fmt.Errorf("%s.header: %q, want a header name", key, in.Header)
		case in.Secret == "":
			return fmt.Errorf("%s.secret: required", key)
		case in.Format != "" && strings.Count(in.Format, "{secret}") != 1:
			return fmt.Errorf("%s.format: %q, want {secret} exactly once", key, in.Format)
		}
		for _, r := range in.Routes {
			if !slices.Contains(routes, r) {
				return fmt.Errorf("%s.routes: %q is not in proxy.routes", key, r)
			}
		}
	}
	return nil
}
