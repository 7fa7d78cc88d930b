package plugin

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/apiguard/apiguard/internal/secret"
)

// Keys of the data source's secure JSON data. Grafana stores these
// encrypted and hands them to the plugin decrypted; the plugin never logs
// them and never sends them back (the settings' JSON form shows them as
// secret.String does: "[redacted]").
const (
	SecureNATSPassword       = "natsPassword"
	SecureNATSToken          = "natsToken"
	SecureClickHousePassword = "clickhousePassword"
)

// Settings is the data source's configuration: the plain part from its
// JSON data, the credentials from its secure JSON data. DefaultSettings
// gives a NATS and a ClickHouse on the local host, as 'apiguard up' runs
// them.
type Settings struct {
	// NATSURL is the NATS server (or a comma-separated list of a
	// cluster's), nats://host:port. Credentials go in the secure fields,
	// not in the URL.
	NATSURL string `json:"natsUrl"`
	// NATSUser is the NATS user name, with the secure NATSPassword.
	NATSUser string `json:"natsUser,omitempty"`
	// ClickHouseAddr is ClickHouse's native protocol address, host:port.
	ClickHouseAddr string `json:"clickhouseAddr"`
	// ClickHouseDatabase holds apiguard's tables.
	ClickHouseDatabase string `json:"clickhouseDatabase"`
	// ClickHouseUser is the ClickHouse user, with the secure
	// ClickHousePassword. A read-only user is enough: the plugin never
	// writes to ClickHouse.
	ClickHouseUser string `json:"clickhouseUser,omitempty"`
	// Timeout bounds a connection attempt and each health check, as a
	// duration string ("5s").
	Timeout string `json:"timeout,omitempty"`

	NATSPassword       secret.String `json:"-"`
	NATSToken          secret.String `json:"-"`
	ClickHousePassword secret.String `json:"-"`
}

// DefaultSettings returns the defaults.
func DefaultSettings() Settings {
	return Settings{NATSURL: "nats://127.0.0.1:4222", ClickHouseAddr: "127.0.0.1:9000",
		ClickHouseDatabase: "apiguard", ClickHouseUser: "default", Timeout: "5s"}
}

var settingsIdentifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseSettings reads a data source's settings over the defaults and
// validates them. Unknown JSON keys are ignored: Grafana's own settings
// share the object.
func ParseSettings(s backend.DataSourceInstanceSettings) (Settings, error) {
	cfg := DefaultSettings()
	if len(s.JSONData) > 0 {
		if err := json.Unmarshal(s.JSONData, &cfg); err != nil {
			return Settings{}, fmt.Errorf("decoding the data source's settings: %w", err)
		}
	}
	cfg.NATSPassword = secret.String(s.DecryptedSecureJSONData[SecureNATSPassword])
	cfg.NATSToken = secret.String(s.DecryptedSecureJSONData[SecureNATSToken])
	cfg.ClickHousePassword = secret.String(s.DecryptedSecureJSONData[SecureClickHousePassword])
	if err := cfg.Validate(); err != nil {
		return Settings{}, err
	}
	return cfg, nil
}

// Validate reports the first bad field by its JSON key.
func (s Settings) Validate() error {
	for _, u := range strings.Split(s.NATSURL, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		switch {
		case err != nil:
			return fmt.Errorf("natsUrl: not a URL")
		case p.Scheme != "nats" && p.Scheme != "tls" && p.Scheme != "ws" && p.Scheme != "wss":
			return fmt.Errorf("natsUrl: scheme %q, want nats, tls, ws or wss", p.Scheme)
		case p.User != nil:
			return fmt.Errorf("natsUrl: carries credentials; put them in the user and password (or token) fields")
		case p.Host == "":
			return fmt.Errorf("natsUrl: no host")
		}
	}
	if _, _, err := net.SplitHostPort(s.ClickHouseAddr); err != nil {
		return fmt.Errorf("clickhouseAddr: %q, want host:port", s.ClickHouseAddr)
	}
	if !settingsIdentifier.MatchString(s.ClickHouseDatabase) {
		return fmt.Errorf("clickhouseDatabase: %q, want letters, digits and _ (not starting with a digit)", s.ClickHouseDatabase)
	}
	if d, err := time.ParseDuration(s.Timeout); err != nil || d < 100*time.Millisecond || d > time.Minute {
		return fmt.Errorf("timeout: %q, want a duration from 100ms to 1m", s.Timeout)
	}
	if s.NATSPassword != "" && s.NATSToken != "" {
		return fmt.Errorf("%s and %s: both set, want one", SecureNATSPassword, SecureNATSToken)
	}
	return nil
}

// timeout returns Timeout as a duration; Validate has checked it.
func (s Settings) timeout() time.Duration {
	d, _ := time.ParseDuration(s.Timeout)
	return d
}
