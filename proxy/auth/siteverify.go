package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/apiguard/apiguard/proxy"
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

// SiteVerify is an Attestor speaking the siteverify protocol.
type SiteVerify struct {
	cfg    proxy.SiteVerifyConfig
	client *http.Client
}

// NewSiteVerify returns a siteverify client for cfg.
func NewSiteVerify(cfg proxy.SiteVerifyConfig) *SiteVerify {
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
