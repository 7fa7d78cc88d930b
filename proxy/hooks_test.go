package proxy

import "github.com/apiguard/apiguard/enforce"

// The package's tests run the real checks of the packages that import
// proxy (proxy/chain, proxy/auth, proxy/inspect, proxy/clients), which an
// internal test file cannot import. hooks_ext_test.go (package proxy_test,
// which may) sets these, and TestMain refuses to run without them.
var (
	// builderForTests is chain.Builder with m, a fresh nonce cache and a
	// discarding log: chains built in these tests are the binary's.
	builderForTests func(m *enforce.Matcher) func(Config) (*Chain, error)
	// inspectionForTests is inspect.NewInspection.
	inspectionForTests func(InspectConfig) Check
)

// TestHooks lets hooks_ext_test.go set the hooks.
var TestHooks = struct {
	Builder    *func(m *enforce.Matcher) func(Config) (*Chain, error)
	Inspection *func(InspectConfig) Check
}{&builderForTests, &inspectionForTests}

// buildChain builds cfg's whole chain with the matcher m (nil: none).
func buildChain(cfg Config, m *enforce.Matcher) (*Chain, error) { return builderForTests(m)(cfg) }
