package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/secret"
)

// Attestor verifies a client attestation (a CAPTCHA or challenge token)
// before the proxy issues a proxy token. Verify may do I/O; it must honour
// ctx.
type Attestor interface {
	Verify(ctx context.Context, attestation, remoteIP string) (Attestation, error)
}

// Attestation is what a verifier vouched for.
type Attestation struct {
	Score    float64 // 1 when the provider gives no score
	Hostname string
	Action   string
}

// SiteVerifyConfig configures the siteverify protocol that Google
// reCAPTCHA v3 and Cloudflare Turnstile share: POST secret, response and
// remoteip as a form; a JSON answer with success, score (reCAPTCHA),
// action, hostname and error-codes.
type SiteVerifyConfig struct {
	URL       string        `yaml:"url"`
	SecretEnv string        `yaml:"secret_env"`
	MinScore  float64       `yaml:"min_score"`
	Hostnames []string      `yaml:"hostnames"` // allowed; empty for any
	Action    string        `yaml:"action"`    // required action; "" for any
	Timeout   time.Duration `yaml:"timeout"`
}

// Validate reports the first bad field by its config key.
func (c SiteVerifyConfig) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))):
		return fmt.Errorf("proxy.tokens.siteverify.url: %q, want https (plain http only on loopback)", secret.URL(c.URL))
	case u.User != nil:
		return fmt.Errorf("proxy.tokens.siteverify.url: %q: credentials in the URL are refused (the secret is read from secret_env)", secret.URL(c.URL))
	case c.SecretEnv == "":
		return errors.New("proxy.tokens.siteverify.secret_env: required")
	case c.MinScore < 0 || c.MinScore > 1:
		return fmt.Errorf("proxy.tokens.siteverify.min_score: %g, want 0 to 1", c.MinScore)
	case c.Timeout <= 0:
		return errors.New("proxy.tokens.siteverify.timeout: must be positive")
	}
	return nil
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// SiteVerify is an Attestor speaking the siteverify protocol.
type SiteVerify struct {
	cfg    SiteVerifyConfig
	client *http.Client
}

// NewSiteVerify returns a siteverify client for cfg.
func NewSiteVerify(cfg SiteVerifyConfig) *SiteVerify {
	return &SiteVerify{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}}
}

// errAttestation is a refused attestation (as opposed to a verifier that
// could not be reached).
type errAttestation struct{ reason string }

func (e *errAttestation) Error() string { return e.reason }

// Verify implements Attestor.
func (s *SiteVerify) Verify(ctx context.Context, attestation, remoteIP string) (Attestation, error) {
	form := url.Values{"secret": {os.Getenv(s.cfg.SecretEnv)}, "response": {attestation}}
	if remoteIP != "" {
		form.Set("remoteip", remoteIP)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return Attestation{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return Attestation{}, fmt.Errorf("siteverify: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Attestation{}, fmt.Errorf("siteverify: status %s", resp.Status)
	}
	var out struct {
		Success  bool     `json:"success"`
		Score    *float64 `json:"score"`
		Action   string   `json:"action"`
		Hostname string   `json:"hostname"`
		Errors   []string `json:"error-codes"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return Attestation{}, fmt.Errorf("siteverify: decoding answer: %w", err)
	}
	a := Attestation{Score: 1, Hostname: out.Hostname, Action: out.Action}
	if out.Score != nil {
		a.Score = *out.Score
	}
	switch {
	case !out.Success:
		return a, &errAttestation{"attestation refused: " + clip(strings.Join(out.Errors, ","), 200)}
	case a.Score < s.cfg.MinScore:
		return a, &errAttestation{fmt.Sprintf("attestation score %.2f under %.2f", a.Score, s.cfg.MinScore)}
	case len(s.cfg.Hostnames) > 0 && !slices.Contains(s.cfg.Hostnames, a.Hostname):
		return a, &errAttestation{"attestation for host " + clip(a.Hostname, 100)}
	case s.cfg.Action != "" && a.Action != s.cfg.Action:
		return a, &errAttestation{"attestation for action " + clip(a.Action, 100)}
	}
	return a, nil
}
