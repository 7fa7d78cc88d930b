package chain

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/apiguard/apiguard/proxy"
	"github.com/apiguard/apiguard/proxy/auth"
	"github.com/apiguard/apiguard/proxy/clients"
	"github.com/apiguard/apiguard/proxy/inspect"
)

// TestMain fails the package if a test leaves a goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// names builds cfg's chain and returns its checks' names in order.
func names(t *testing.T, cfg proxy.Config) []string {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := Build(cfg, Deps{Nonces: auth.NewNonceCache(10), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ch := range c.Checks() {
		out = append(out, ch.Name())
	}
	return out
}

// TestBuildOrder checks that the default chain runs decoys, bots and
// origins after enforcement and before authentication, the rate limit
// after authentication, and the inspection last.
func TestBuildOrder(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.Upstream = "http://127.0.0.1:9"
	want := []string{proxy.EnforcementName, clients.DecoyName, clients.BotsName, clients.OriginsName, auth.AuthName,
		clients.RateLimitName, inspect.InspectionName}
	if got := names(t, cfg); !slices.Equal(got, want) {
		t.Errorf("chain %v, want %v", got, want)
	}
}

func TestCRSInChain(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.Upstream = "http://127.0.0.1:1"
	cfg.CRS.Routes = []string{"POST /orders"}
	got := names(t, cfg)
	i := slices.Index(got, inspect.CRSName)
	if i < 1 || got[i-1] != inspect.InspectionName {
		t.Errorf("checks %v, want crs right after inspection", got)
	}
}

// TestSchemaInChain checks that a configured document puts the schema
// check last in the chain, after inspection, and that no document leaves
// it out.
func TestSchemaInChain(t *testing.T) {
	spec := filepath.Join(t.TempDir(), "orders.yaml")
	doc := "openapi: 3.0.3\ninfo: {title: orders, version: \"1\"}\npaths:\n  /orders:\n    post:\n      responses: {\"201\": {description: created}}\n"
	if err := os.WriteFile(spec, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := proxy.DefaultConfig()
	cfg.Upstream = "http://127.0.0.1:1"
	if got := names(t, cfg); slices.Contains(got, inspect.SchemaName) {
		t.Errorf("schema check without a document: %v", got)
	}
	cfg.Schema.OpenAPI = spec
	got := names(t, cfg)
	if got[len(got)-1] != inspect.SchemaName || got[len(got)-2] != inspect.InspectionName {
		t.Errorf("checks %v, want inspection then schema last", got)
	}
}

// TestTokensBeforeAuth checks that proxy tokens, when on, run after the
// client checks and right before authentication (which trusts the
// token's issuer), and that the chain has the JWKS refresh to run.
func TestTokensBeforeAuth(t *testing.T) {
	master, err := auth.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_MASTER_KEY", master)
	key, _ := auth.ParseMasterKey(master)
	v, _ := auth.NewVault(key)
	if err := v.Set("tokens/seed", []byte("0123456789abcdef0123456789abcdef"), time.Now()); err != nil {
		t.Fatal(err)
	}
	vaultFile := filepath.Join(t.TempDir(), "vault.yaml")
	if err := v.Save(vaultFile); err != nil {
		t.Fatal(err)
	}
	cfg := proxy.DefaultConfig()
	cfg.Upstream = "http://127.0.0.1:1"
	cfg.Secrets.VaultFile, cfg.Secrets.MasterKeyEnv = vaultFile, "TEST_MASTER_KEY"
	cfg.Tokens.Enabled = true
	cfg.Tokens.SiteVerify.URL, cfg.Tokens.SiteVerify.SecretEnv = "https://siteverify.example/verify", "TEST_SV_SECRET"
	got := names(t, cfg)
	i := slices.Index(got, auth.TokensName)
	if i < 1 || got[i-1] != clients.OriginsName || got[i+1] != auth.AuthName {
		t.Errorf("checks %v, want tokens after origins and right before auth", got)
	}
}
