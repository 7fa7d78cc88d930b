package auth_test

import (
	"log/slog"

	"github.com/apiguard/apiguard/proxy"
	"github.com/apiguard/apiguard/proxy/auth"
	"github.com/apiguard/apiguard/proxy/chain"
)

// The package's fixtures build the chain the binary builds; auth cannot
// import proxy/chain, its test binary can.
func init() {
	*auth.BuilderForTests = func(cfg proxy.Config, nonces *auth.NonceCache) (*proxy.Chain, error) {
		return chain.Build(cfg, chain.Deps{Nonces: nonces, Log: slog.New(slog.DiscardHandler)})
	}
}
