package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/apiguard/apiguard/internal/secret"
)

// Config configures the proxy. DefaultConfig gives safe values; Validate
// names the first bad key.
type Config struct {
	// Listen is the address clients connect to.
	Listen string `yaml:"listen"`
	// Upstream is the base URL of the protected API. It may not carry
	// credentials (they would never be sent): the upstream's credentials
	// are injected from the vault (Secrets.Inject).
	Upstream string `yaml:"upstream"`
	// Instance names this proxy in events; the host name if empty.
	Instance string `yaml:"instance"`
	// Routes are the API's route templates, "METHOD /path/{param}".
	Routes []string `yaml:"routes"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// APIKeyHeader is the header that carries API keys ("" for none).
	APIKeyHeader string `yaml:"api_key_header"`
	// CaptureQueryValues puts query values, not only names, in events,
	// on every route. It is the older spelling of capture.query_values,
	// kept so that existing configs mean what they meant.
	CaptureQueryValues bool `yaml:"capture_query_values"`
	// Capture says what events record of query values and body
	// parameters, per route (capture.go, docs/configuration.md).
	Capture CaptureConfig `yaml:"capture"`
	// FailOpen serves requests when the enforcement state could not be
	// loaded at start; otherwise the proxy refuses to start without it.
	FailOpen bool `yaml:"fail_open"`
	// SyncTimeout is how long the proxy waits at start for the enforcement
	// state before it fails (or, fail-open, serves without it).
	SyncTimeout time.Duration `yaml:"sync_timeout"`
	// Snapshot is the local copy of the enforcement state the proxy
	// starts from (snapshot.go).
	Snapshot SnapshotConfig `yaml:"enforcement_snapshot"`

	// TLS terminates TLS at the proxy (off by default).
	TLS TLSConfig `yaml:"tls"`
	// HTTP2 serves HTTP/2: by ALPN with TLS, with prior knowledge (h2c)
	// without.
	HTTP2 bool `yaml:"http2"`

	// Inspection configures payload inspection; Decoys the decoy paths.
	Inspection InspectConfig `yaml:"inspection"`
	Decoys     DecoyConfig   `yaml:"decoys"`
	// Schema validates requests against an OpenAPI document (docs/proxy.md).
	Schema SchemaConfig `yaml:"schema"`
	// CRS runs the OWASP Core Rule Set on the routes that ask for it.
	CRS        CRSConfig       `yaml:"crs"`
	Bots       BotsConfig      `yaml:"bots"`
	Origins    OriginsConfig   `yaml:"origins"`
	Auth       AuthConfig      `yaml:"auth"`
	RateLimits RateLimitConfig `yaml:"rate_limits"`
	Secrets    SecretsConfig   `yaml:"secrets"`
	Tokens     TokensConfig    `yaml:"tokens"`
	Responses  ResponsesConfig `yaml:"responses"`

	// Engine serves HTTP/1.x: "native", apiguard's own connection loop
	// (the default), or "net/http", Go's server. HTTP/2 is net/http's on
	// both.
	Engine string `yaml:"engine"`

	MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	UpstreamTimeout   time.Duration `yaml:"upstream_timeout"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:            "127.0.0.1:8080",
		Upstream:          "http://127.0.0.1:9000",
		APIKeyHeader:      "X-API-Key",
		TrustedProxies:    []string{},
		Engine:            EngineNative,
		MaxHeaderBytes:    32 << 10,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		UpstreamTimeout:   30 * time.Second,
		SyncTimeout:       10 * time.Second,
		Snapshot:          DefaultSnapshotConfig(),
		TLS:               DefaultTLSConfig(),
		HTTP2:             true,
		Inspection:        DefaultInspectConfig(),
		Capture:           DefaultCaptureConfig(),
		Decoys:            DefaultDecoyConfig(),
		Schema:            DefaultSchemaConfig(),
		CRS:               DefaultCRSConfig(),
		Bots:              DefaultBotsConfig(),
		Origins:           DefaultOriginsConfig(),
		Auth:              DefaultAuthConfig(),
		RateLimits:        DefaultRateLimitConfig(),
		Secrets:           DefaultSecretsConfig(),
		Tokens:            DefaultTokensConfig(),
		Responses:         DefaultResponsesConfig(),
	}
}

// Validate reports the first bad field by its config key.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("proxy.listen: %q: %w", c.Listen, err)
	}
	u, err := url.Parse(c.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("proxy.upstream: %q, want an http or https URL", secret.URL(c.Upstream))
	}
	if u.User != nil {
		return fmt.Errorf("proxy.upstream: %q: credentials in the URL are never sent; inject the upstream's from the vault (proxy.secrets.inject)", secret.URL(c.Upstream))
	}
	if c.Engine != "" && c.Engine != EngineNative && c.Engine != EngineNetHTTP {
		return fmt.Errorf("proxy.engine: %q, want %q or %q", c.Engine, EngineNative, EngineNetHTTP)
	}
	if _, err := c.trusted(); err != nil {
		return err
	}
	if err := c.Snapshot.Validate(); err != nil {
		return err
	}
	if _, err := NewTemplater(c.Routes); err != nil {
		return err
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if err := c.Inspection.Validate(); err != nil {
		return err
	}
	if err := c.Capture.Validate(); err != nil {
		return err
	}
	if err := c.Schema.Validate(); err != nil {
		return err
	}
	if err := c.CRS.Validate(); err != nil {
		return err
	}
	if err := c.Decoys.Validate(); err != nil {
		return err
	}
	if err := c.Bots.Validate(); err != nil {
		return err
	}
	if err := c.Origins.Validate(); err != nil {
		return err
	}
	if err := c.Auth.Validate(c.Tokens.Enabled); err != nil {
		return err
	}
	if err := c.RateLimits.Validate(); err != nil {
		return err
	}
	if err := c.Secrets.Validate(c.Routes); err != nil {
		return err
	}
	if err := c.Tokens.Validate(c.Secrets); err != nil {
		return err
	}
	if c.Auth.Signatures.Enabled && c.Secrets.VaultFile == "" {
		return fmt.Errorf("proxy.auth.signatures: signing secrets live in the vault; set proxy.secrets.vault_file")
	}
	if err := c.Responses.Validate(); err != nil {
		return err
	}
	switch {
	case c.MaxHeaderBytes < 1<<10:
		return fmt.Errorf("proxy.max_header_bytes: %d, want at least 1024", c.MaxHeaderBytes)
	case c.ReadHeaderTimeout <= 0:
		return fmt.Errorf("proxy.read_header_timeout: must be positive")
	case c.ReadTimeout <= 0:
		return fmt.Errorf("proxy.read_timeout: must be positive")
	case c.WriteTimeout <= 0:
		return fmt.Errorf("proxy.write_timeout: must be positive")
	case c.IdleTimeout <= 0:
		return fmt.Errorf("proxy.idle_timeout: must be positive")
	case c.UpstreamTimeout <= 0:
		return fmt.Errorf("proxy.upstream_timeout: must be positive")
	case c.SyncTimeout <= 0:
		return fmt.Errorf("proxy.sync_timeout: must be positive")
	}
	return nil
}

func (c Config) trusted() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range c.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("proxy.trusted_proxies[%d]: %q is neither a CIDR nor an address", i, s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
