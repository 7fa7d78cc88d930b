package proxy_test

import (
	"log/slog"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/proxy"
	"github.com/apiguard/apiguard/proxy/auth"
	"github.com/apiguard/apiguard/proxy/chain"
	"github.com/apiguard/apiguard/proxy/inspect"
)

// The package's tests build chains with the real checks; proxy cannot
// import the packages that hold them, its test binary can.
func init() {
	*proxy.TestHooks.Builder = func(m *enforce.Matcher) func(proxy.Config) (*proxy.Chain, error) {
		return chain.Builder(chain.Deps{Matcher: m, Nonces: auth.NewNonceCache(1000), Log: slog.New(slog.DiscardHandler)})
	}
	*proxy.TestHooks.Inspection = func(cfg proxy.InspectConfig) proxy.Check { return inspect.NewInspection(cfg) }
}
