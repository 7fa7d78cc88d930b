// Package clients holds the proxy's checks on who is calling: decoys
// (paths no real client calls), bots and automation, browser origins and
// CORS, and rate limits per plan, per client IP and per API. Each
// implements proxy.Check. Their configuration is part of proxy.Config
// (proxy.DecoyConfig, proxy.BotsConfig, proxy.OriginsConfig,
// proxy.RateLimitConfig); Build makes the checks, and proxy/chain places
// them in the chain (and in every chain a reload builds). Blocks and
// throttles from the enforcement state stay in proxy.
package clients

import (
	"log/slog"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

var (
	_ proxy.Check = (*Decoy)(nil)
	_ proxy.Check = (*Bots)(nil)
	_ proxy.Check = (*Origins)(nil)
	_ proxy.Check = (*RateLimit)(nil)
)

// Checks are the checks of this package, by where they run in the chain.
type Checks struct {
	// Before run right after enforcement, before proxy tokens and
	// authentication: decoys first (a decoy hit must look like a plain
	// 404 whoever sends it and whatever it carries), then bots and
	// origins.
	Before []proxy.Check
	// RateLimit runs after authentication, which sets the consumer's plan
	// (nil: none).
	RateLimit proxy.Check
}

// Build returns the checks cfg configures, by where they run: decoys,
// bots and origins before authentication, the rate limit after it. It
// reads the bot lists from disk and logs the crawler patterns it skips.
// cfg must be valid.
func Build(cfg proxy.Config, log *slog.Logger) (Checks, error) {
	bots, err := NewBots(cfg.Bots)
	if err != nil {
		return Checks{}, err
	}
	if bots.Skipped() > 0 && log != nil {
		log.Warn("skipped crawler patterns Go's regexp cannot compile (look-behind)", "skipped", bots.Skipped())
	}
	return Checks{
		Before:    []proxy.Check{NewDecoy(cfg.Decoys), bots, NewOrigins(cfg.Origins)},
		RateLimit: NewRateLimit(cfg.RateLimits),
	}, nil
}

// clip is valid UTF-8, at most n bytes, as the proxy writes event strings.
func clip(s string, n int) string { return event.Clip(event.ValidUTF8(s), n) }
