package inspect

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/proxy"
)

const ordersSpec = `openapi: 3.0.3
info: {title: orders, version: "1"}
servers: [{url: "https://api.example.com/v1"}]
paths:
  /orders:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [item, qty]
              additionalProperties: false
              properties:
                item: {type: string, maxLength: 40}
                qty: {type: integer, minimum: 1, maximum: 100}
      responses: {"201": {description: created}}
  /orders/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
        - {name: fields, in: query, schema: {type: string, enum: [summary, full]}}
      responses: {"200": {description: ok}}
`

func TestSchema(t *testing.T) {
	s, err := newSchema(proxy.SchemaConfig{OpenAPI: "orders.yaml", Mode: "block", Undeclared: "allow"}, []byte(ordersSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, target, ctype, body string
		status                            int    // 0: allowed
		reason                            string // substring of the denial's reason
	}{
		{"valid body", "POST", "/orders", "application/json", `{"item":"book","qty":2}`, 0, ""},
		{"missing field", "POST", "/orders", "application/json", `{"item":"book"}`, 400, `property "qty" is missing`},
		{"wrong type", "POST", "/orders", "application/json", `{"item":"book","qty":"two"}`, 400, "request body at qty"},
		{"out of range", "POST", "/orders", "application/json", `{"item":"book","qty":1000}`, 400, "request body at qty"},
		{"mass assignment", "POST", "/orders", "application/json", `{"item":"book","qty":1,"price":0}`, 400, "request body"},
		{"no body", "POST", "/orders", "application/json", ``, 400, "request body"},
		{"valid path and query", "GET", "/orders/42?fields=full", "", "", 0, ""},
		{"path parameter not an integer", "GET", "/orders/abc", "", "", 400, `path parameter "id"`},
		{"query value outside the enum", "GET", "/orders/42?fields=secret", "", "", 400, `query parameter "fields"`},
		{"undeclared operation allowed", "GET", "/internal/debug", "", "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := exchangeFor(tc.method, tc.target, tc.ctype, tc.body)
			d := s.Check(x)
			switch {
			case tc.status == 0 && d != nil:
				t.Fatalf("refused: %+v", d)
			case tc.status != 0 && d == nil:
				t.Fatal("allowed")
			case d != nil && (d.Status != tc.status || !strings.Contains(d.Reason, tc.reason)):
				t.Fatalf("denial %d %q, want %d with %q", d.Status, d.Reason, tc.status, tc.reason)
			}
			if d == nil && tc.body != "" {
				b, _ := io.ReadAll(x.Req.Body)
				if string(b) != tc.body {
					t.Errorf("upstream body %q, want %q", b, tc.body)
				}
			}
		})
	}
}

func TestSchemaModes(t *testing.T) {
	flag, err := newSchema(proxy.SchemaConfig{OpenAPI: "o", Mode: "flag", Undeclared: "block", Routes: []string{"POST /orders", "GET /internal/debug"}}, []byte(ordersSpec))
	if err != nil {
		t.Fatal(err)
	}
	x := exchangeFor("POST", "/orders", "application/json", `{"item":"book"}`)
	if d := flag.Check(x); d != nil || x.Event.Check != SchemaName || !strings.HasPrefix(x.Event.Reason, "flagged: ") {
		t.Errorf("flag mode: denial %+v, event check %q reason %q", d, x.Event.Check, x.Event.Reason)
	}
	if d := flag.Check(exchangeFor("GET", "/internal/debug", "", "")); d == nil || d.Status != http.StatusNotFound {
		t.Errorf("undeclared: block gave %+v, want 404", d)
	}
	// A route not listed is not validated at all.
	if d := flag.Check(exchangeFor("GET", "/orders/abc", "", "")); d != nil {
		t.Errorf("an unlisted route was checked: %+v", d)
	}
}

func TestSchemaConfigErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get: {parameters: [{name: a, in: nowhere}]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  proxy.SchemaConfig
		want string
	}{
		{proxy.SchemaConfig{Mode: "warn", Undeclared: "allow"}, "proxy.schema.mode"},
		{proxy.SchemaConfig{Mode: "block", Undeclared: "maybe"}, "proxy.schema.undeclared"},
		{proxy.SchemaConfig{Mode: "block", Undeclared: "allow", Routes: []string{"orders"}}, "proxy.schema.routes[0]"},
		{proxy.SchemaConfig{Mode: "block", Undeclared: "allow", Routes: []string{"GET /x"}}, "proxy.schema.openapi is empty"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewSchema(proxy.SchemaConfig{OpenAPI: filepath.Join(t.TempDir(), "missing.yaml")}); err == nil || !strings.Contains(err.Error(), "proxy.schema.openapi") {
		t.Errorf("missing document: %v", err)
	}
	if _, err := NewSchema(proxy.SchemaConfig{OpenAPI: bad}); err == nil || !strings.Contains(err.Error(), "invalid document") {
		t.Errorf("invalid document: %v", err)
	}
}

// TestSchemaQueryParsesStrictly: OpenAPI validation reads the query with
// url.ParseQuery, which leaves out a pair with a ";" or a bad escape; such
// a pair would reach the upstream unvalidated, so on a declared operation
// that query is a schema violation.
func TestSchemaQueryParsesStrictly(t *testing.T) {
	s, err := newSchema(proxy.SchemaConfig{OpenAPI: "orders.yaml", Mode: "block", Undeclared: "allow"}, []byte(ordersSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/orders/42?fields=secret;x", "/orders/42?fields=secret%zz", "/orders/42?a=1;fields=secret"} {
		d := s.Check(exchangeFor("GET", target, "", ""))
		if d == nil || d.Status != http.StatusBadRequest || !strings.Contains(d.Reason, "query") {
			t.Errorf("%s: %+v, want a 400 for its query", target, d)
		}
	}
	if d := s.Check(exchangeFor("GET", "/internal/debug?C=M;O=A", "", "")); d != nil {
		t.Errorf("undeclared operation with a lenient query: %+v, want it allowed", d)
	}
}
