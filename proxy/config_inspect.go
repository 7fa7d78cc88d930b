package proxy

import (
	"errors"
	"fmt"
	"strings"
)

// The configuration of the payload checks that live in proxy/inspect
// (inspection, CRS, OpenAPI schema): it is part of Config, which
// proxy/inspect reads, so it stays here.

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

// Injection modes.
const (
	InjectionBlock = "block" // refuse with 403
	InjectionFlag  = "flag"  // let through, mark the event for the pipeline
	InjectionOff   = "off"
)

// InspectConfig configures payload inspection. Routes overrides the body
// limit and the injection mode per route template ("POST /upload").
type InspectConfig struct {
	// MaxBodyBytes is the largest request body; larger is refused (413).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxHeaders is the most header fields (values) a request may carry
	// (431). Their total size is bounded by proxy.max_header_bytes.
	MaxHeaders int `yaml:"max_headers"`
	// JSON bounds JSON bodies, checked while reading them.
	JSON JSONLimits `yaml:"json"`
	// Injection says what SQL injection or XSS found by libinjection in
	// path segments, query values, form values and JSON strings does.
	Injection string                  `yaml:"injection"`
	Routes    map[string]RouteInspect `yaml:"routes"`
}

// RouteInspect overrides inspection settings for one route.
type RouteInspect struct {
	MaxBodyBytes int64  `yaml:"max_body_bytes"`
	Injection    string `yaml:"injection"`
	// Account names the field that carries the account on a login-class
	// route: a JSON key (its first string value anywhere in the body), a
	// form field or a query parameter. Its value goes into the event's
	// account, hashed (AccountHash), for the credential-stuffing detector.
	Account string `yaml:"account"`
	// StrictQuery refuses (400) a query string with a raw ";" or a "%"
	// that does not start a %XX escape, which parsers read differently;
	// otherwise such a query is inspected leniently and forwarded as sent
	// (query.go). It applies whatever the injection mode.
	StrictQuery bool `yaml:"strict_query"`
}

// DefaultInspectConfig returns the defaults: 1 MiB bodies, 100 header
// fields, JSON 32 deep with 10,000 elements and 64 KiB strings, injections
// blocked.
func DefaultInspectConfig() InspectConfig {
	return InspectConfig{
		MaxBodyBytes: 1 << 20,
		MaxHeaders:   100,
		JSON:         JSONLimits{MaxDepth: 32, MaxElements: 10000, MaxString: 64 << 10},
		Injection:    InjectionBlock,
	}
}

// Validate reports the first bad field by its config key.
func (c InspectConfig) Validate() error {
	mode := func(key, m string) error {
		switch m {
		case InjectionBlock, InjectionFlag, InjectionOff:
			return nil
		}
		return fmt.Errorf("%s: %q, want block, flag or off", key, m)
	}
	switch {
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("proxy.inspection.max_body_bytes: %d, want at least 1", c.MaxBodyBytes)
	case c.MaxHeaders < 1:
		return fmt.Errorf("proxy.inspection.max_headers: %d, want at least 1", c.MaxHeaders)
	case c.JSON.MaxDepth < 1 || c.JSON.MaxElements < 1 || c.JSON.MaxString < 1:
		return fmt.Errorf("proxy.inspection.json: every limit must be at least 1")
	}
	if err := mode("proxy.inspection.injection", c.Injection); err != nil {
		return err
	}
	for r, o := range c.Routes {
		if _, _, ok := strings.Cut(r, " "); !ok {
			return fmt.Errorf("proxy.inspection.routes[%q]: want \"METHOD /path\"", r)
		}
		if o.MaxBodyBytes < 0 {
			return fmt.Errorf("proxy.inspection.routes[%q].max_body_bytes: %d", r, o.MaxBodyBytes)
		}
		if o.Injection != "" {
			if err := mode(fmt.Sprintf("proxy.inspection.routes[%q].injection", r), o.Injection); err != nil {
				return err
			}
		}
	}
	return nil
}
