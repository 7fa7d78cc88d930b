// Package inspect holds the proxy's payload checks that need a large
// engine of their own: the OWASP Core Rule Set through Coraza (CRS) and
// OpenAPI request validation with kin-openapi (Schema). Both implement
// proxy.Check and run after the proxy's own inspection, which has already
// bounded and buffered the body. Their configuration is part of
// proxy.Config (proxy.CRSConfig, proxy.SchemaConfig); Build makes the
// checks a configuration asks for, and proxy.ChainDeps.Payload is how the
// proxy's chain (and every reload) gets them, so that only this package
// imports Coraza and kin-openapi.
package inspect

import (
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// Build returns the checks cfg configures, in chain order: the CRS, then
// the schema; none when neither is configured. cfg must be valid.
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
