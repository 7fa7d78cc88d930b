package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
)

// Chain is the part of the proxy a reload replaces whole: the checks in
// order, and what shapes the upstream request (injected secrets) and the
// response (stripped headers). proxy/chain builds the configured one
// (chain.Build) with NewChainWith; NewChain makes one of a hand-made list
// of checks.
type Chain struct {
	checks    []Check
	inject    Injector // nil: nothing injected
	stripResp []string // canonical names
	runs      []func(context.Context) error
}

// Injector sets the upstream's credentials on the upstream leg, from
// secrets the proxy holds (proxy/auth's vault injection).
type Injector interface {
	// Apply removes the client's copies of the injected headers from h
	// and sets those of api's route.
	Apply(api string, h http.Header)
	// Leaks reports whether a response header value carries an injected
	// secret (an upstream that echoes credentials back); the proxy then
	// removes that header.
	Leaks(v string) bool
}

// ChainParts are what a built chain carries besides its checks.
type ChainParts struct {
	// Inject shapes the upstream leg; nil: nothing injected.
	Inject Injector
	// Runs are the chain's background work (JWKS refresh), run by Run
	// until its context ends.
	Runs []func(context.Context) error
}

// NewChain returns a chain of checks with cfg's response shaping and no
// secret injection.
func NewChain(cfg Config, checks ...Check) *Chain {
	return &Chain{checks: checks, stripResp: canonical(cfg.Responses.StripHeaders)}
}

// NewChainWith returns a chain of checks, in the order a request meets
// them, with cfg's response shaping and parts' injection and background
// work.
func NewChainWith(cfg Config, checks []Check, parts ChainParts) *Chain {
	c := NewChain(cfg, checks...)
	c.inject, c.runs = parts.Inject, parts.Runs
	return c
}

// Checks returns the checks in order.
func (c *Chain) Checks() []Check { return c.checks }

// WithChecks returns a copy of c that runs checks instead of c's, with c's
// response shaping, injection and background work: a chain narrowed to
// the checks under test, or extended.
func (c *Chain) WithChecks(checks ...Check) *Chain {
	d := *c
	d.checks = checks
	return &d
}

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
