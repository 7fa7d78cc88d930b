// Package alerts delivers anomalies to people: as alerts to Prometheus
// Alertmanager's v2 API, and as signed JSON (or Slack-compatible) posts to
// webhooks. Delivery is asynchronous, bounded and counted: a slow or
// failing destination never blocks the pipeline.
package alerts

import (
	"fmt"
	"net/url"
	"text/template"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
)

// Config configures alert delivery.
type Config struct {
	// MinSeverity is the least severity that alerts: low, medium, high or
	// critical.
	MinSeverity string `yaml:"min_severity"`
	// ResolveAfter is how long after its last anomaly an alert resolves
	// (Alertmanager's endsAt). A recurring anomaly keeps it firing.
	ResolveAfter time.Duration `yaml:"resolve_after"`
	// DashboardURL is a text/template for the investigation link, with
	// .ID, .Detector, .API, .PrincipalKind, .PrincipalValue and .From, .To
	// (unix milliseconds around the anomaly). Values are query-escaped.
	DashboardURL string `yaml:"dashboard_url"`
	// Alertmanager is the base URL of an Alertmanager ("" for none). It
	// may carry basic-auth credentials (https://user:password@am:9093),
	// so it prints redacted.
	Alertmanager secret.URL `yaml:"alertmanager"`
	// Webhooks receive every alerting anomaly.
	Webhooks []WebhookConfig `yaml:"webhooks"`
	// QueueSize bounds each destination's queue; past it anomalies are
	// dropped and counted.
	QueueSize int `yaml:"queue_size"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a failed delivery is tried again, with
	// exponential backoff.
	Retries int `yaml:"retries"`
}

// WebhookConfig is one webhook.
type WebhookConfig struct {
	// URL is where alerts are posted. It prints redacted whole: an
	// incoming-webhook URL's path is its credential (Slack's, Teams').
	URL secret.String `yaml:"url"`
	// Format is "json" (apiguard's own, signed) or "slack" (a Slack
	// incoming-webhook payload).
	Format string `yaml:"format"`
	// SecretEnv names the environment variable that holds the HMAC key;
	// the key itself never sits in the config file.
	SecretEnv string `yaml:"secret_env"`
}

// DefaultConfig returns the defaults: high and critical anomalies, five
// minutes to resolve, no destinations.
func DefaultConfig() Config {
	return Config{MinSeverity: "high", ResolveAfter: 5 * time.Minute, QueueSize: 1024, Timeout: 5 * time.Second, Retries: 5}
}

// Enabled reports whether any destination is configured.
func (c Config) Enabled() bool { return c.Alertmanager != "" || len(c.Webhooks) > 0 }

// Validate reports the first bad field by its config key.
func (c Config) Validate() error {
	if _, ok := severities[c.MinSeverity]; !ok {
		return fmt.Errorf("alerts.min_severity: %q, want low, medium, high or critical", c.MinSeverity)
	}
	switch {
	case c.ResolveAfter <= 0:
		return fmt.Errorf("alerts.resolve_after: must be positive")
	case c.QueueSize < 1:
		return fmt.Errorf("alerts.queue_size: %d, want at least 1", c.QueueSize)
	case c.Timeout <= 0:
		return fmt.Errorf("alerts.timeout: must be positive")
	case c.Retries < 0:
		return fmt.Errorf("alerts.retries: %d, want 0 or more", c.Retries)
	}
	if c.DashboardURL != "" {
		if _, err := template.New("dashboard").Parse(c.DashboardURL); err != nil {
			return fmt.Errorf("alerts.dashboard_url: %w", err)
		}
	}
	if c.Alertmanager != "" {
		if err := httpURL(c.Alertmanager.Reveal(), c.Alertmanager.String()); err != nil {
			return fmt.Errorf("alerts.alertmanager: %w", err)
		}
	}
	for i, w := range c.Webhooks {
		if err := httpURL(w.URL.Reveal(), w.URL.String()); err != nil {
			return fmt.Errorf("alerts.webhooks[%d].url: %w", i, err)
		}
		if w.Format != "json" && w.Format != "slack" {
			return fmt.Errorf("alerts.webhooks[%d].format: %q, want json or slack", i, w.Format)
		}
		if w.Format == "json" && w.SecretEnv == "" {
			return fmt.Errorf("alerts.webhooks[%d].secret_env: a json webhook is signed; name the variable that holds its key", i)
		}
	}
	return nil
}

// httpURL checks that raw is an http or https URL; its errors show shown,
// the URL as it may be printed, never raw.
func httpURL(raw, shown string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q, want an http or https URL", shown)
	}
	return nil
}

var severities = map[string]event.Severity{
	"low":      event.Severity_SEVERITY_LOW,
	"medium":   event.Severity_SEVERITY_MEDIUM,
	"high":     event.Severity_SEVERITY_HIGH,
	"critical": event.Severity_SEVERITY_CRITICAL,
}
