package auth

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/apiguard/apiguard/proxy"
)

// LoadMasterKey reads the master key from c's master_key_file or the
// environment variable it names.
func LoadMasterKey(c proxy.SecretsConfig) ([]byte, error) {
	if c.MasterKeyFile != "" {
		data, err := os.ReadFile(c.MasterKeyFile)
		if err != nil {
			return nil, fmt.Errorf("proxy.secrets.master_key_file: %w", err)
		}
		k, err := ParseMasterKey(string(data))
		if err != nil {
			return nil, fmt.Errorf("proxy.secrets.master_key_file %s: %w", c.MasterKeyFile, err)
		}
		return k, nil
	}
	s := os.Getenv(c.MasterKeyEnv)
	if s == "" {
		return nil, fmt.Errorf("no master key: set $%s or proxy.secrets.master_key_file", c.MasterKeyEnv)
	}
	k, err := ParseMasterKey(s)
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", c.MasterKeyEnv, err)
	}
	return k, nil
}

// OpenVault opens the vault c configures, or returns nil without one.
func OpenVault(c proxy.SecretsConfig) (*Vault, error) {
	if c.VaultFile == "" {
		return nil, nil
	}
	key, err := LoadMasterKey(c)
	if err != nil {
		return nil, err
	}
	return LoadVault(c.VaultFile, key, false)
}

// Injector holds the opened injections, in memory only, and sets them on
// the upstream leg: it implements proxy.Injector.
type Injector struct {
	strip   []string            // canonical header names removed from every request
	byRoute map[string][]header // route → headers to set
	all     []header            // for every route
	values  []string            // the secret values, to keep them out of responses
}

type header struct{ name, value string }

// NewInjector opens cfg's injections from v.
func NewInjector(cfg proxy.SecretsConfig, v *Vault) (*Injector, error) {
	in := &Injector{byRoute: map[string][]header{}}
	for i, inj := range cfg.Inject {
		plain, err := v.Open(inj.Secret)
		if err != nil {
			return nil, fmt.Errorf("proxy.secrets.inject[%d]: %w", i, err)
		}
		format := inj.Format
		if format == "" {
			format = "{secret}"
		}
		h := header{http.CanonicalHeaderKey(inj.Header), strings.Replace(format, "{secret}", string(plain), 1)}
		if !slices.Contains(in.strip, h.name) {
			in.strip = append(in.strip, h.name)
		}
		in.values = append(in.values, string(plain))
		if len(inj.Routes) == 0 {
			in.all = append(in.all, h)
		}
		for _, r := range inj.Routes {
			in.byRoute[r] = append(in.byRoute[r], h)
		}
	}
	return in, nil
}

// Apply strips client copies of injected headers and sets the route's.
func (in *Injector) Apply(api string, h http.Header) {
	for _, n := range in.strip {
		delete(h, n)
	}
	for _, x := range in.all {
		h[x.name] = []string{x.value}
	}
	for _, x := range in.byRoute[api] {
		h[x.name] = []string{x.value}
	}
}

// Leaks reports whether a response header value carries an injected
// secret (an upstream that echoes credentials back).
func (in *Injector) Leaks(v string) bool {
	for _, s := range in.values {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}

var _ proxy.Injector = (*Injector)(nil)
