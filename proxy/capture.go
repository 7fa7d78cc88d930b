package proxy

import (
	"fmt"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// Body capture modes (proxy.capture.body).
const (
	CaptureOff    = "off"    // no body parameters in events
	CaptureNames  = "names"  // the names of form fields and JSON leaves
	CaptureValues = "values" // names and values, each truncated, redacted where configured
)

// BodyParamPrefix begins the name of a body parameter in an event's query
// list: "body.$.user.name" is the JSON leaf at user.name ("[]" marks an
// array item: "body.$.items[].sku"), "body.email" the form field email.
// Body parameters follow the query's own parameters. A query parameter
// whose name itself begins with "body." reads the same: captures and
// detectors cannot tell them apart.
const BodyParamPrefix = "body."

// Redacted replaces a captured value that may be a secret.
const Redacted = "[redacted]"

// DefaultRedact are the field-name patterns whose values are never
// captured: case-insensitive substrings of a field's own name (its last
// path segment).
var DefaultRedact = []string{"pass", "pwd", "secret", "token", "auth", "credential", "api_key", "apikey",
	"session", "cookie", "card", "cvv", "cvc", "ssn", "iban", "otp", "private"}

// CaptureConfig says what events record of a request's parameters beyond
// the query's names (proxy.capture). The defaults record no values and no
// body parameters: an event then holds nothing a client typed but the
// path and the query's names.
type CaptureConfig struct {
	// QueryValues records query values, not only names (truncated to 1 KiB,
	// redacted as body values are). proxy.capture_query_values: true, the
	// older key, still turns it on for every route.
	QueryValues bool `yaml:"query_values"`
	// Body is off, names or values: which body parameters of form and
	// JSON requests events record. The inspection check reads the body
	// anyway; capture adds no second read and needs the body inspected
	// (its limits apply: a body it refuses records nothing).
	Body string `yaml:"body"`
	// MaxValue truncates each captured body value to this many bytes.
	MaxValue int `yaml:"max_value"`
	// MaxParams bounds the body parameters recorded per request.
	MaxParams int `yaml:"max_params"`
	// Redact are field-name patterns (case-insensitive substrings of a
	// field's own name) whose values are recorded as "[redacted]". Empty
	// means DefaultRedact; list them all to change them.
	Redact []string `yaml:"redact"`
	// RedactCardNumbers records as "[redacted]" any value of 13 to 19
	// digits (spaces and dashes allowed between them) that passes the Luhn
	// check, whatever its field's name.
	RedactCardNumbers bool `yaml:"redact_card_numbers"`
	// Routes overrides query_values and body per route template.
	Routes map[string]RouteCapture `yaml:"routes"`
}

// RouteCapture overrides capture settings for one route; an unset field
// keeps the global setting.
type RouteCapture struct {
	QueryValues *bool  `yaml:"query_values"`
	Body        string `yaml:"body"`
}

// DefaultCaptureConfig records query names only: no values, no body
// parameters; values, where turned on, are truncated to 64 bytes and
// DefaultRedact and card numbers redacted.
func DefaultCaptureConfig() CaptureConfig {
	return CaptureConfig{Body: CaptureOff, MaxValue: 64, MaxParams: 32, RedactCardNumbers: true}
}

// Validate reports the first bad field by its config key.
func (c CaptureConfig) Validate() error {
	mode := func(key, m string) error {
		switch m {
		case CaptureOff, CaptureNames, CaptureValues:
			return nil
		}
		return fmt.Errorf("%s: %q, want off, names or values", key, m)
	}
	if err := mode("proxy.capture.body", c.Body); err != nil {
		return err
	}
	switch {
	case c.MaxValue < 1:
		return fmt.Errorf("proxy.capture.max_value: %d, want at least 1", c.MaxValue)
	case c.MaxParams < 1 || c.MaxParams > 256:
		return fmt.Errorf("proxy.capture.max_params: %d, want 1..256", c.MaxParams)
	}
	for i, p := range c.Redact {
		if strings.TrimSpace(p) == "" {
			return fmt.Errorf("proxy.capture.redact[%d]: empty pattern", i)
		}
	}
	for r, o := range c.Routes {
		if _, _, ok := strings.Cut(r, " "); !ok {
			return fmt.Errorf("proxy.capture.routes[%q]: want \"METHOD /path\"", r)
		}
		if o.Body != "" {
			if err := mode(fmt.Sprintf("proxy.capture.routes[%q].body", r), o.Body); err != nil {
				return err
			}
		}
	}
	return nil
}

// capturer is CaptureConfig made ready for requests: immutable, part of
// the proxy's state snapshot.
type capturer struct {
	queryValues bool
	body        string
	routes      map[string]RouteCapture
	maxValue    int
	maxParams   int
	redact      []string // lower case
	cards       bool
}

// newCapturer prepares cfg's capture settings; legacyQueryValues is
// proxy.capture_query_values. cfg must be valid.
func newCapturer(cfg CaptureConfig, legacyQueryValues bool) *capturer {
	c := &capturer{queryValues: cfg.QueryValues || legacyQueryValues, body: cfg.Body, routes: cfg.Routes,
		maxValue: cfg.MaxValue, maxParams: cfg.MaxParams, cards: cfg.RedactCardNumbers}
	if c.body == "" {
		c.body = CaptureOff
	}
	red := cfg.Redact
	if len(red) == 0 {
		red = DefaultRedact
	}
	for _, p := range red {
		c.redact = append(c.redact, strings.ToLower(strings.TrimSpace(p)))
	}
	return c
}

// route returns the settings for api. It allocates nothing.
func (c *capturer) route(api string) (queryValues bool, body string) {
	queryValues, body = c.queryValues, c.body
	if o, ok := c.routes[api]; ok {
		if o.QueryValues != nil {
			queryValues = *o.QueryValues
		}
		if o.Body != "" {
			body = o.Body
		}
	}
	return queryValues, body
}

// query returns what an event records of api's raw query.
func (c *capturer) query(api, raw string) []*event.QueryParam {
	return c.queryInto(nil, nil, api, raw)
}

// queryInto is query with queryParamsInto's out and store.
func (c *capturer) queryInto(out []*event.QueryParam, store []event.QueryParam, api, raw string) []*event.QueryParam {
	values, _ := c.route(api)
	qs := queryParamsInto(out, store, raw, values)
	if values {
		for _, q := range qs {
			if q.Value != "" && c.secret(q.Name, q.Value) {
				q.Value = Redacted
			}
		}
	}
	return qs
}

// secret reports whether the value of the field name must be redacted:
// its own name (after the last "." or "[]") matches a pattern, or the
// value looks like a card number.
func (c *capturer) secret(name, v string) bool {
	own := strings.TrimSuffix(name, "[]")
	if i := strings.LastIndexByte(own, '.'); i >= 0 {
		own = own[i+1:]
	}
	for _, p := range c.redact {
		if containsFold(own, p) {
			return true
		}
	}
	return c.cards && cardNumber(v)
}

// containsFold reports whether s holds the lower-case ASCII pattern p,
// ignoring ASCII case, without allocating.
func containsFold(s, p string) bool {
	for i := 0; i+len(p) <= len(s); i++ {
		j := 0
		for ; j < len(p); j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != p[j] {
				break
			}
		}
		if j == len(p) {
			return true
		}
	}
	return false
}

// cardNumber reports whether v is 13 to 19 digits, with spaces or dashes
// between them, that pass the Luhn check.
func cardNumber(v string) bool {
	if len(v) < 13 || len(v) > 19+6 {
		return false
	}
	var digits [25]byte
	n := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= '0' && c <= '9':
			digits[n] = c - '0'
			n++
		case c == ' ' || c == '-':
		default:
			return false
		}
	}
	if n < 13 || n > 19 {
		return false
	}
	sum := 0
	for i := n - 1; i >= 0; i-- {
		d := int(digits[i])
		if (n-1-i)%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// BodyCapture collects one request's body parameters for its event, as
// proxy.capture asks for them on its route; the check that reads the body
// (proxy/inspect's inspection) feeds it. Exchange.BodyCapture returns it.
type BodyCapture struct {
	c      *capturer
	values bool
	ev     *event.RequestEvent
	n      int
}

// add records one parameter: "body." and name, and the value, truncated
// and redacted, when values are captured. Past max_params it records
// nothing.
func (b *BodyCapture) add(name, v string) {
	if b.n >= b.c.maxParams {
		return
	}
	b.n++
	qp := &event.QueryParam{Name: clip(BodyParamPrefix+name, 160)}
	if b.values {
		if b.c.secret(name, v) {
			qp.Value = Redacted
		} else {
			qp.Value = clip(v, b.c.maxValue)
		}
	}
	b.ev.Query = append(b.ev.Query, qp)
}

// JSONLeaf records one leaf of a JSON body: its path (from "$", kept in
// the event's name so JSON leaves read apart from form fields) and its
// value where values are captured.
func (b *BodyCapture) JSONLeaf(path, v []byte) {
	val := ""
	if b.values {
		val = string(v)
	}
	b.add(string(path), val)
}

// Form records the fields of a form body, in order.
func (b *BodyCapture) Form(raw string) {
	for it := (queryIter{rest: raw}); b.n < b.c.maxParams; {
		_, k, v, ok := it.next()
		if !ok {
			return
		}
		name, _ := unescapeQuery(k)
		if name == "" {
			continue
		}
		val := ""
		if b.values {
			val, _ = unescapeQuery(v)
		}
		b.add(name, val)
	}
}

// BodyCapture returns the capture of x's body parameters, or nil where
// the route captures none.
func (x *Exchange) BodyCapture() *BodyCapture {
	if x.state == nil || x.state.capture == nil {
		return nil
	}
	_, mode := x.state.capture.route(x.API)
	if mode == CaptureOff {
		return nil
	}
	return &BodyCapture{c: x.state.capture, values: mode == CaptureValues, ev: x.Event}
}
