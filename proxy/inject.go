package proxy

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
)

// SecretsConfig configures the secret vault and what is injected from it
// on the way upstream.
type SecretsConfig struct {
	// VaultFile is the sealed store (see Vault); "" for none.
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

// LoadMasterKey reads the master key from MasterKeyFile or the
// environment.
func (c SecretsConfig) LoadMasterKey() ([]byte, error) {
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

// LoadVault opens the configured vault, or returns nil without one.
func (c SecretsConfig) LoadVault() (*Vault, error) {
	if c.VaultFile == "" {
		return nil, nil
	}
	key, err := c.LoadMasterKey()
	if err != nil {
		return nil, err
	}
	return LoadVault(c.VaultFile, key, false)
}

// injector holds the opened injections, in memory only.
type injector struct {
	strip   []string            // canonical header names removed from every request
	byRoute map[string][]header // route → headers to set
	all     []header            // for every route
	values  []string            // the secret values, to keep them out of responses
}

type header struct{ name, value string }

func newInjector(cfg SecretsConfig, v *Vault) (*injector, error) {
	in := &injector{byRoute: map[string][]header{}}
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

// apply strips client copies of injected headers and sets the route's.
func (in *injector) apply(api string, h http.Header) {
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

// leaks reports whether a response header value carries an injected
// secret (an upstream that echoes credentials back).
func (in *injector) leaks(v string) bool {
	for _, s := range in.values {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}
