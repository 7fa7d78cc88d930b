package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/apiguard/apiguard/enforce"
)

// Chain is the part of the proxy a reload replaces whole: the checks in
// order, and what shapes the upstream request (injected secrets) and the
// response (stripped headers). Build it with BuildChain, or NewChain for a
// hand-made list of checks.
type Chain struct {
	checks    []Check
	inject    *injector // nil: nothing injected
	stripResp []string  // canonical names
	runs      []func(context.Context) error
	tokens    *TokenService // nil: proxy tokens off
}

// NewChain returns a chain of checks with cfg's response shaping and no
// secret injection.
func NewChain(cfg Config, checks ...Check) *Chain {
	return &Chain{checks: checks, stripResp: canonical(cfg.Responses.StripHeaders)}
}

// Checks returns the checks in order.
func (c *Chain) Checks() []Check { return c.checks }

// Run runs the chain's background work (JWKS refresh) until ctx ends.
func (c *Chain) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.runs))
	for i, run := range c.runs {
		wg.Go(func() { errs[i] = run(ctx) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ChainDeps are what a chain shares with the process and with the chains
// that replace it on reload.
type ChainDeps struct {
	Matcher *enforce.Matcher
	// Nonces remembers request-signature nonces across reloads, so a
	// reload does not reopen the replay window.
	Nonces *NonceCache
	// Verifier checks attestations for proxy tokens (nil: the configured
	// siteverify endpoint).
	Verifier Attestor
	Log      *slog.Logger
	// Payload builds the checks that run after inspection and live in
	// proxy/inspect (the OWASP CRS, OpenAPI validation): inspect.Build,
	// set by the binary's wiring, since proxy/inspect imports this package.
	// Nil: none. A reload builds them again from the new configuration.
	Payload func(Config) ([]Check, error)
	// Clients builds the checks that live in proxy/clients (decoys, bots,
	// origins, rate limits): clients.Build, set by the binary's wiring,
	// since proxy/clients imports this package. Nil: none. A reload builds
	// them again from the new configuration.
	Clients func(Config, *slog.Logger) (ClientChecks, error)
}

// ClientChecks are the checks of proxy/clients, by where they run in the
// chain.
type ClientChecks struct {
	// Before run right after enforcement, before proxy tokens and
	// authentication: decoys first (a decoy hit must look like a plain
	// 404 whoever sends it and whatever it carries), then bots and
	// origins.
	Before []Check
	// RateLimit runs after authentication, which sets the consumer's plan
	// (nil: none).
	RateLimit Check
}

// BuildChain builds every configured check, in the order a request meets
// them, and reads what they need from disk (key stores, vault, lists). It
// starts nothing; Run does. cfg must be valid.
func BuildChain(cfg Config, deps ChainDeps) (*Chain, error) {
	c := NewChain(cfg)
	var cl ClientChecks
	if deps.Clients != nil {
		var err error
		if cl, err = deps.Clients(cfg, deps.Log); err != nil {
			return nil, err
		}
	}
	vault, err := cfg.Secrets.LoadVault()
	if err != nil {
		return nil, err
	}
	if vault != nil {
		if c.inject, err = newInjector(cfg.Secrets, vault); err != nil {
			return nil, err
		}
	}
	jwtv, err := NewJWTVerifier(cfg.Auth.JWT, deps.Log)
	if err != nil {
		return nil, err
	}
	c.runs = append(c.runs, jwtv.Run)
	if cfg.Tokens.Enabled {
		// Keys derive from the seed and the clock: a reload (or another
		// proxy with the same vault) derives the same ones.
		seed, err := vault.Open(cfg.Tokens.SeedSecret)
		if err != nil {
			return nil, fmt.Errorf("proxy.tokens.seed_secret: %w", err)
		}
		keys, err := NewTokenKeys(seed, cfg.Tokens.Rotate)
		if err != nil {
			return nil, err
		}
		att := deps.Verifier
		if att == nil {
			att = NewSiteVerify(cfg.Tokens.SiteVerify)
		}
		c.tokens = NewTokenService(cfg.Tokens, keys, att, jwtv)
		jwtv.AddIssuer(c.tokens.Issuer(), keys.PublicSet)
	}
	insp := NewInspection(cfg.Inspection)
	auth, err := NewAuth(cfg.Auth, cfg.APIKeyHeader, AuthDeps{JWT: jwtv, Vault: vault, Nonces: deps.Nonces,
		MaxBody: func(api string) int64 { n, _, _ := insp.route(api); return n }})
	if err != nil {
		return nil, err
	}
	// Decoys come before bots and inspection: a decoy hit must look like
	// a plain 404 whoever sends it and whatever it carries.
	c.checks = append([]Check{NewEnforcement(deps.Matcher)}, cl.Before...)
	if c.tokens != nil {
		c.checks = append(c.checks, c.tokens)
	}
	c.checks = append(c.checks, auth)
	if cl.RateLimit != nil {
		// After authentication, which sets the consumer's plan.
		c.checks = append(c.checks, cl.RateLimit)
	}
	c.checks = append(c.checks, insp)
	if deps.Payload != nil {
		// After inspection: the body is read, bounded and checked once,
		// then run through the CRS and validated against its schema.
		more, err := deps.Payload(cfg)
		if err != nil {
			return nil, err
		}
		c.checks = append(c.checks, more...)
	}
	return c, nil
}

func canonical(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, http.CanonicalHeaderKey(n))
	}
	return out
}

// state is what one request runs with; a reload swaps it whole, and a
// request keeps the state it started with.
type state struct {
	cfg      Config
	upstream *url.URL
	routes   *Templater
	ident    *Identifier
	chain    *Chain
	capture  *capturer
}

func newState(cfg Config, chain *Chain) *state {
	upstream, _ := url.Parse(cfg.Upstream)
	routes, _ := NewTemplater(cfg.Routes)
	trusted, _ := cfg.trusted()
	return &state{cfg: cfg, upstream: upstream, routes: routes, ident: NewIdentifier(trusted, cfg.APIKeyHeader), chain: chain,
		capture: newCapturer(cfg.Capture, cfg.CaptureQueryValues)}
}

// restartOnly lists the keys a reload cannot change: the listener and
// what the server was built with.
func restartOnly(old, next Config) error {
	switch {
	case old.Listen != next.Listen:
		return fmt.Errorf("proxy.listen changed: restart to apply")
	case old.TLS != next.TLS:
		return fmt.Errorf("proxy.tls changed: restart to apply")
	case old.HTTP2 != next.HTTP2:
		return fmt.Errorf("proxy.http2 changed: restart to apply")
	case old.MaxHeaderBytes != next.MaxHeaderBytes || old.ReadHeaderTimeout != next.ReadHeaderTimeout ||
		old.ReadTimeout != next.ReadTimeout || old.WriteTimeout != next.WriteTimeout || old.IdleTimeout != next.IdleTimeout:
		return fmt.Errorf("proxy server limits (max_header_bytes, *_timeout) changed: restart to apply")
	case old.UpstreamTimeout != next.UpstreamTimeout:
		return fmt.Errorf("proxy.upstream_timeout changed: restart to apply")
	}
	return nil
}

// Reload validates cfg and swaps it in with chain; requests already in
// the chain finish with the old one. It refuses changes that need a
// restart (listener, TLS, server limits) and keeps the old state on any
// error. It returns the chain it replaced, whose Run the caller stops.
func (p *Proxy) Reload(cfg Config, chain *Chain) (*Chain, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	old := p.state.Load()
	if cfg.Instance == "" {
		cfg.Instance = old.cfg.Instance
	}
	if err := restartOnly(old.cfg, cfg); err != nil {
		return nil, err
	}
	p.state.Store(newState(cfg, chain))
	if p.metrics != nil {
		p.metrics.setRoutes(slices.Clone(cfg.Routes))
	}
	return old.chain, nil
}
