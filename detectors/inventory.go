package detectors

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/event"
)

// InventoryName names the shadow- and zombie-API detector's anomalies.
const InventoryName = "shadow_api"

// InventoryConfig configures the shadow- and zombie-API detector.
type InventoryConfig struct {
	// OpenAPI is the path of the declared inventory, an OpenAPI 3 (or
	// Swagger 2) document in YAML or JSON. Empty: the detector is idle.
	OpenAPI string `yaml:"openapi"`
	// Repeat is how often one undeclared or deprecated operation is
	// reported again while it keeps being served.
	Repeat time.Duration `yaml:"repeat"`
	// Ops is the parsed inventory; the caller loads it from OpenAPI with
	// ParseOpenAPI (detectors do no I/O).
	Ops *Inventory `yaml:"-"`
}

func (c InventoryConfig) validate() error {
	if c.OpenAPI != "" && c.Ops == nil {
		return fmt.Errorf("detectors.inventory.openapi: %s is named but not loaded", c.OpenAPI)
	}
	if c.Repeat < 0 {
		return fmt.Errorf("detectors.inventory.repeat: %s, want ≥ 0", c.Repeat)
	}
	return nil
}

// Inventory is the declared set of operations: "METHOD /path/{}" (path
// parameters unnamed) to whether it is deprecated.
type Inventory struct {
	ops map[string]bool
}

// Len returns the number of declared operations.
func (inv *Inventory) Len() int { return len(inv.ops) }

var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// ParseOpenAPI reads the operations of an OpenAPI 3 or Swagger 2 document
// (YAML or JSON): each path's methods and their deprecated flags. Errors
// name the document position.
func ParseOpenAPI(doc []byte) (*Inventory, error) {
	var root struct {
		OpenAPI string                          `yaml:"openapi"`
		Swagger string                          `yaml:"swagger"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading OpenAPI document: %w", err)
	}
	if root.OpenAPI == "" && root.Swagger == "" {
		return nil, errors.New("reading OpenAPI document: no openapi or swagger version field")
	}
	if len(root.Paths) == 0 {
		return nil, errors.New("reading OpenAPI document: paths is empty")
	}
	inv := &Inventory{ops: map[string]bool{}}
	for path, item := range root.Paths {
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("reading OpenAPI document: paths: %q does not start with /", path)
		}
		for method, node := range item {
			if !slices.Contains(openAPIMethods, method) {
				continue // parameters, summary, servers, $ref …
			}
			var op struct {
				Deprecated bool `yaml:"deprecated"`
			}
			if err := node.Decode(&op); err != nil {
				return nil, fmt.Errorf("reading OpenAPI document: paths.%s.%s (line %d): %w", path, method, node.Line, err)
			}
			inv.ops[normalizeOp(strings.ToUpper(method)+" "+path)] = op.Deprecated
		}
	}
	return inv, nil
}

// normalizeOp unnames path parameters ("GET /a/{id}" → "GET /a/{}"), so
// the proxy's route names and the document's need not agree.
func normalizeOp(op string) string {
	if !strings.Contains(op, "{") {
		return op
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(op, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(op[i:], '}')
		if j < 0 {
			break
		}
		b.WriteString(op[:i+1])
		b.WriteByte('}')
		op = op[i+j+1:]
	}
	b.WriteString(op)
	return b.String()
}

// inventory finds shadow APIs — operations served (2xx or 3xx) that the
// declared inventory lacks — and zombie APIs — operations it marks
// deprecated that are still being served. Each is reported once per
// Repeat, under the principal kind "api", with the client that called it.
type inventory struct{ cfg InventoryConfig }

func (*inventory) name() string { return InventoryName }

func (d *inventory) observe(e *Engine, x *ctx, out []finding) []finding {
	if d.cfg.Ops == nil || !x.allowed || x.ev.Status < 200 || x.ev.Status >= 400 {
		return out
	}
	op := normalizeOp(x.ev.Api)
	deprecated, declared := d.cfg.Ops.ops[op]
	if declared && !deprecated {
		return out
	}
	feature, what := "undeclared_operation", "is not in the declared inventory (a shadow API)"
	if deprecated {
		feature, what = "deprecated_operation", "is deprecated in the inventory but still served (a zombie API)"
	}
	return append(out, finding{p: 1e-7, kind: event.KindAPI, val: x.ev.Api, cooldown: d.cfg.Repeat,
		deviations: []*event.Deviation{{Feature: feature, Observed: 1, Expected: 0}},
		summary:    fmt.Sprintf("%s %s; served %d to %s %s (%s)", x.ev.Api, what, x.ev.Status, x.kind, x.val, event.UAFamily(x.ev.UserAgent))})
}
