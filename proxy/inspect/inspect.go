// Package inspect holds the proxy's payload checks: Inspection (header
// count, body limits, JSON structure with proxy.ScanJSON, XML without DTDs,
// SQL injection and XSS with libinjection, strict queries, the account of
// login routes), then the OWASP Core Rule Set through Coraza (CRS) and
// OpenAPI request validation with kin-openapi (Schema), which run after
// the inspection has bounded and buffered the body. Each implements
// proxy.Check. Their configuration is part of proxy.Config
// (proxy.InspectConfig, proxy.CRSConfig, proxy.SchemaConfig);
// NewInspection and Build make the checks, and proxy/chain places them in
// the chain (and in every chain a reload builds), so that only this
// package imports libinjection, Coraza and kin-openapi.
package inspect

import (
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

var _ proxy.Check = (*Inspection)(nil)

// Build returns the checks that run after the inspection, in chain order:
// the CRS, then the schema; none when neither is configured. cfg must be
// valid.
func Build(cfg proxy.Config) ([]proxy.Check, error) {
	var checks []proxy.Check
	crs, err := NewCRS(cfg.CRS)
	if err != nil {
		return nil, err
	}
	if crs != nil {
		checks = append(checks, crs)
	}
	schema, err := NewSchema(cfg.Schema)
	if err != nil {
		return nil, err
	}
	if schema != nil {
		// After inspection: the body is read, bounded and checked once,
		// then validated against its schema.
		checks = append(checks, schema)
	}
	return checks, nil
}

func deny(status int, detail, reason string) *proxy.Denial {
	return &proxy.Denial{Status: status, Detail: detail, Decision: event.Decision_DECISION_BLOCK, Reason: reason}
}

// clip is valid UTF-8, at most n bytes, as the proxy writes event strings.
func clip(s string, n int) string { return event.Clip(event.ValidUTF8(s), n) }
