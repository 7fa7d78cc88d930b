package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/apiguard/apiguard/event"
)

// SchemaName is the name of the OpenAPI request validation check in events.
const SchemaName = "schema"

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

// Schema validates requests against an OpenAPI document with kin-openapi:
// path, query, header and cookie parameters, and the request body against
// its schema for its content type. Authentication is the auth check's
// business, so security requirements are not checked here. The
// document's servers are ignored: paths are matched as the proxy sees
// them.
type Schema struct {
	cfg    SchemaConfig
	router routers.Router
}

// NewSchema loads and checks the document cfg names; nil without one.
func NewSchema(cfg SchemaConfig) (*Schema, error) {
	if cfg.OpenAPI == "" {
		return nil, nil
	}
	data, err := os.ReadFile(cfg.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("proxy.schema.openapi: %w", err)
	}
	return newSchema(cfg, data)
}

func newSchema(cfg SchemaConfig, data []byte) (*Schema, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("proxy.schema.openapi %s: %w", cfg.OpenAPI, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("proxy.schema.openapi %s: invalid document: %w", cfg.OpenAPI, err)
	}
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("proxy.schema.openapi %s: %w", cfg.OpenAPI, err)
	}
	return &Schema{cfg: cfg, router: router}, nil
}

// Name implements Check.
func (*Schema) Name() string { return SchemaName }

// Check implements Check.
func (s *Schema) Check(x *Exchange) *Denial {
	if len(s.cfg.Routes) > 0 && !slices.Contains(s.cfg.Routes, x.API) {
		return nil
	}
	r := x.Req
	route, params, err := s.router.FindRoute(r)
	if err != nil {
		if s.cfg.Undeclared == "block" {
			return &Denial{Status: http.StatusNotFound, Decision: event.Decision_DECISION_BLOCK,
				Reason: "undeclared operation " + r.Method + " " + clip(r.URL.Path, 128)}
		}
		return nil
	}
	// kin-openapi reads the query with url.ParseQuery, which leaves out a
	// pair with a ";" or a bad escape: it would go upstream unvalidated.
	if qerr := strictQuery(r.URL.RawQuery); qerr != nil {
		err = fmt.Errorf("%w: a declared operation's query must parse strictly", qerr)
	} else {
		in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		err = openapi3filter.ValidateRequest(r.Context(), in)
	}
	if err == nil {
		return nil
	}
	why := schemaReason(err)
	if s.cfg.Mode == "flag" {
		x.Event.Check, x.Event.Reason = SchemaName, "flagged: "+why
		return nil
	}
	return &Denial{Status: http.StatusBadRequest, Detail: why, Decision: event.Decision_DECISION_BLOCK, Reason: why}
}

// schemaReason says what is wrong, in one line that names the parameter
// or the body, without echoing the value.
func schemaReason(err error) string {
	var re *openapi3filter.RequestError
	if errors.As(err, &re) {
		where := "request"
		switch {
		case re.Parameter != nil:
			where = fmt.Sprintf("%s parameter %q", re.Parameter.In, re.Parameter.Name)
		case re.RequestBody != nil:
			where = "request body"
		}
		var se *openapi3.SchemaError
		if errors.As(re.Err, &se) {
			field := strings.Join(se.JSONPointer(), ".")
			if field != "" {
				field = " at " + field
			}
			return clip(fmt.Sprintf("%s%s: %s", where, field, se.Reason), 256)
		}
		reason := re.Reason
		if reason == "" && re.Err != nil {
			reason = re.Err.Error()
		}
		return clip(where+": "+reason, 256)
	}
	return clip(err.Error(), 256)
}
