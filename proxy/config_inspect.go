package proxy

import (
	"errors"
	"fmt"
	"strings"
)

// The configuration of the payload checks that live in proxy/inspect
// (CRS, OpenAPI schema): it is part of Config, which proxy/inspect reads,
// so it stays here.

// CRSConfig runs the OWASP Core Rule Set (v4, embedded) through Coraza on
// the routes that ask for it.
type CRSConfig struct {
	// Routes lists the route templates under the CRS; empty: off.
	Routes []string `yaml:"routes"`
	// ParanoiaLevel is the CRS blocking paranoia level, 1 (few false
	// positives) to 4.
	ParanoiaLevel int `yaml:"paranoia_level"`
	// AnomalyThreshold is the inbound anomaly score at which a request is
	// refused (CRS default 5: one critical rule).
	AnomalyThreshold int `yaml:"anomaly_threshold"`
	// Mode is block (403) or flag (let through, mark the event).
	Mode string `yaml:"mode"`
	// Directives are SecLang lines added after the CRS, for rule
	// exclusions ("SecRuleRemoveById 920350").
	Directives string `yaml:"directives"`
}

// DefaultCRSConfig is off; when on, paranoia 1, threshold 5, block.
func DefaultCRSConfig() CRSConfig {
	return CRSConfig{ParanoiaLevel: 1, AnomalyThreshold: 5, Mode: "block"}
}

// Validate reports the first bad field by its config key.
func (c CRSConfig) Validate() error {
	switch {
	case c.ParanoiaLevel < 1 || c.ParanoiaLevel > 4:
		return fmt.Errorf("proxy.crs.paranoia_level: %d, want 1..4", c.ParanoiaLevel)
	case c.AnomalyThreshold < 1:
		return fmt.Errorf("proxy.crs.anomaly_threshold: %d, want at least 1", c.AnomalyThreshold)
	case c.Mode != "block" && c.Mode != "flag":
		return fmt.Errorf("proxy.crs.mode: %q, want block or flag", c.Mode)
	}
	for i, r := range c.Routes {
		if _, _, ok := strings.Cut(r, " "); !ok {
			return fmt.Errorf("proxy.crs.routes[%d]: %q, want \"METHOD /path\"", i, r)
		}
	}
	return nil
}

// SchemaConfig configures OpenAPI request validation.
type SchemaConfig struct {
	// OpenAPI is an OpenAPI 3 document (YAML or JSON). Empty: no
	// validation.
	OpenAPI string `yaml:"openapi"`
	// Routes lists the route templates validated; empty validates every
	// operation the document declares.
	Routes []string `yaml:"routes"`
	// Mode is block (400 with what is wrong) or flag (let through, mark
	// the event).
	Mode string `yaml:"mode"`
	// Undeclared is what happens to a request on a validated route that
	// matches no operation of the document: allow (the shadow-API detector
	// reports undeclared operations), or block (404, a positive security
	// model).
	Undeclared string `yaml:"undeclared"`
}

// DefaultSchemaConfig is off; when on, it blocks invalid requests and
// allows undeclared ones.
func DefaultSchemaConfig() SchemaConfig { return SchemaConfig{Mode: "block", Undeclared: "allow"} }

// Validate reports the first bad field by its config key.
func (c SchemaConfig) Validate() error {
	if c.Mode != "block" && c.Mode != "flag" {
		return fmt.Errorf("proxy.schema.mode: %q, want block or flag", c.Mode)
	}
	if c.Undeclared != "allow" && c.Undeclared != "block" {
		return fmt.Errorf("proxy.schema.undeclared: %q, want allow or block", c.Undeclared)
	}
	for i, r := range c.Routes {
		if _, _, ok := strings.Cut(r, " "); !ok {
			return fmt.Errorf("proxy.schema.routes[%d]: %q, want \"METHOD /path\"", i, r)
		}
	}
	if c.OpenAPI == "" && len(c.Routes) > 0 {
		return errors.New("proxy.schema.routes: set, but proxy.schema.openapi is empty")
	}
	return nil
}
