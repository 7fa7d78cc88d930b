package inspect

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
	"github.com/apiguard/apiguard/proxy"
)

// SchemaName is the name of the OpenAPI request validation check in events.
const SchemaName = "schema"

var _ proxy.Check = (*Schema)(nil)

// Schema validates requests against an OpenAPI document with kin-openapi:
// path, query, header and cookie parameters, and the request body against
// its schema for its content type. Authentication is the auth check's
// business, so security requirements are not checked here. The
// document's servers are ignored: paths are matched as the proxy sees
// them.
type Schema struct {
	cfg    proxy.SchemaConfig
	router routers.Router
}

// NewSchema loads and checks the document cfg names; nil without one.
func NewSchema(cfg proxy.SchemaConfig) (*Schema, error) {
	if cfg.OpenAPI == "" {
		return nil, nil
	}
	data, err := os.ReadFile(cfg.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("proxy.schema.openapi: %w", err)
	}
	return newSchema(cfg, data)
}

func newSchema(cfg proxy.SchemaConfig, data []byte) (*Schema, error) {
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

// Name implements proxy.Check.
func (*Schema) Name() string { return SchemaName }

// Check implements proxy.Check.
func (s *Schema) Check(x *proxy.Exchange) *proxy.Denial {
	if len(s.cfg.Routes) > 0 && !slices.Contains(s.cfg.Routes, x.API) {
		return nil
	}
	r := x.Req
	route, params, err := s.router.FindRoute(r)
	if err != nil {
		if s.cfg.Undeclared == "block" {
			return &proxy.Denial{Status: http.StatusNotFound, Decision: event.Decision_DECISION_BLOCK,
				Reason: "undeclared operation " + r.Method + " " + clip(r.URL.Path, 128)}
		}
		return nil
	}
	// kin-openapi reads the query with url.ParseQuery, which leaves out a
	// pair with a ";" or a bad escape: it would go upstream unvalidated.
	if qerr := proxy.StrictQuery(r.URL.RawQuery); qerr != nil {
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
	return &proxy.Denial{Status: http.StatusBadRequest, Detail: why, Decision: event.Decision_DECISION_BLOCK, Reason: why}
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
