// Package chain assembles the proxy's check chain from a configuration:
// enforcement (proxy), the client checks (proxy/clients), proxy tokens and
// authentication (proxy/auth), payload inspection, the CRS and OpenAPI
// validation (proxy/inspect), in the order a request meets them, with the
// vault's secret injection for the upstream leg and the JWKS refresh as
// the chain's background work. It sits above the checks' packages, which
// import proxy, so that proxy imports none of them; proxy.Reloader builds
// every chain after the first through Build too.
package chain

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/proxy"
	"github.com/apiguard/apiguard/proxy/auth"
	"github.com/apiguard/apiguard/proxy/clients"
	"github.com/apiguard/apiguard/proxy/inspect"
)

// Deps are what a chain shares with the process and with the chains that
// replace it on reload.
type Deps struct {
	// Matcher is the enforcement state (nil: nothing enforced).
	Matcher *enforce.Matcher
	// Nonces remembers request-signature nonces across reloads, so a
	// reload does not reopen the replay window.
	Nonces *auth.NonceCache
	// Verifier checks attestations for proxy tokens (nil: the configured
	// siteverify endpoint).
	Verifier auth.Attestor
	Log      *slog.Logger
}

// Build builds every configured check, in the order a request meets them,
// and reads what they need from disk (key stores, vault, lists). It
// starts nothing; the chain's Run does. cfg must be valid.
func Build(cfg proxy.Config, deps Deps) (*proxy.Chain, error) {
	cl, err := clients.Build(cfg, deps.Log)
	if err != nil {
		return nil, err
	}
	vault, err := auth.OpenVault(cfg.Secrets)
	if err != nil {
		return nil, err
	}
	var parts proxy.ChainParts
	if vault != nil {
		in, err := auth.NewInjector(cfg.Secrets, vault)
		if err != nil {
			return nil, err
		}
		parts.Inject = in
	}
	jwtv, err := auth.NewJWTVerifier(cfg.Auth.JWT, deps.Log)
	if err != nil {
		return nil, err
	}
	parts.Runs = []func(context.Context) error{jwtv.Run}
	var tokens *auth.TokenService
	if cfg.Tokens.Enabled {
		// Keys derive from the seed and the clock: a reload (or another
		// proxy with the same vault) derives the same ones.
		seed, err := vault.Open(cfg.Tokens.SeedSecret)
		if err != nil {
			return nil, fmt.Errorf("proxy.tokens.seed_secret: %w", err)
		}
		keys, err := auth.NewTokenKeys(seed, cfg.Tokens.Rotate)
		if err != nil {
			return nil, err
		}
		att := deps.Verifier
		if att == nil {
			att = auth.NewSiteVerify(cfg.Tokens.SiteVerify)
		}
		tokens = auth.NewTokenService(cfg.Tokens, keys, att, jwtv)
		jwtv.AddIssuer(tokens.Issuer(), keys.PublicSet)
	}
	insp := inspect.NewInspection(cfg.Inspection)
	// Signatures hash the body: auth reads it up to the route's limit.
	authn, err := auth.NewAuth(cfg.Auth, cfg.APIKeyHeader, auth.AuthDeps{JWT: jwtv, Vault: vault, Nonces: deps.Nonces,
		MaxBody: insp.MaxBody})
	if err != nil {
		return nil, err
	}
	payload, err := inspect.Build(cfg)
	if err != nil {
		return nil, err
	}
	// Decoys come before bots and inspection: a decoy hit must look like
	// a plain 404 whoever sends it and whatever it carries.
	checks := append([]proxy.Check{proxy.NewEnforcement(deps.Matcher)}, cl.Before...)
	if tokens != nil {
		checks = append(checks, tokens)
	}
	checks = append(checks, authn)
	if cl.RateLimit != nil {
		// After authentication, which sets the consumer's plan.
		checks = append(checks, cl.RateLimit)
	}
	// The body is read, bounded and checked once by the inspection, then
	// run through the CRS and validated against its schema.
	checks = append(checks, insp)
	checks = append(checks, payload...)
	return proxy.NewChainWith(cfg, checks, parts), nil
}

// Builder returns Build with deps, the build function proxy.NewReloader
// takes.
func Builder(deps Deps) func(proxy.Config) (*proxy.Chain, error) {
	return func(cfg proxy.Config) (*proxy.Chain, error) { return Build(cfg, deps) }
}
