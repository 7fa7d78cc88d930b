package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// OriginsName is the name of the origins check in events.
const OriginsName = "origins"

// OriginsConfig says which browser origins may call the API. An empty
// Allowed list (globally and for the route) checks nothing.
type OriginsConfig struct {
	// Allowed origins, "https://shop.example"; "*" allows any (and then
	// credentials are never allowed).
	Allowed          []string                `yaml:"allowed"`
	AllowHeaders     []string                `yaml:"allow_headers"`
	AllowMethods     []string                `yaml:"allow_methods"`
	ExposeHeaders    []string                `yaml:"expose_headers"`
	AllowCredentials bool                    `yaml:"allow_credentials"`
	MaxAge           time.Duration           `yaml:"max_age"`
	Routes           map[string]RouteOrigins `yaml:"routes"`
}

// RouteOrigins overrides the allowed origins for one route.
type RouteOrigins struct {
	Allowed []string `yaml:"allowed"`
}

// DefaultOriginsConfig returns the defaults: no origin check; when
// origins are set, the usual methods and headers, preflights cached 10
// minutes.
func DefaultOriginsConfig() OriginsConfig {
	return OriginsConfig{
		AllowHeaders: []string{"Content-Type", "Authorization", "X-API-Key"},
		AllowMethods: []string{"GET", "POST", "PUT", "PATCH", "DELETE"},
		MaxAge:       10 * time.Minute,
	}
}

// Validate reports the first bad field by its config key.
func (c OriginsConfig) Validate() error {
	check := func(key string, list []string) error {
		for i, o := range list {
			if o == "*" {
				continue
			}
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
				return fmt.Errorf("%s[%d]: %q, want scheme://host[:port] or *", key, i, o)
			}
		}
		return nil
	}
	if err := check("proxy.origins.allowed", c.Allowed); err != nil {
		return err
	}
	for r, o := range c.Routes {
		if err := check(fmt.Sprintf("proxy.origins.routes[%q].allowed", r), o.Allowed); err != nil {
			return err
		}
	}
	if c.MaxAge < 0 {
		return fmt.Errorf("proxy.origins.max_age: must not be negative")
	}
	return nil
}

// Origins refuses requests from origins a route does not allow (403),
// answers CORS preflights itself (204 with the allowed methods and
// headers, never forwarded), and adds the CORS headers to the upstream's
// answers to allowed origins.
type Origins struct {
	cfg OriginsConfig
}

// NewOrigins returns the check; cfg must be valid.
func NewOrigins(cfg OriginsConfig) *Origins { return &Origins{cfg: cfg} }

// Name implements Check.
func (*Origins) Name() string { return OriginsName }

// Check implements Check.
func (o *Origins) Check(x *Exchange) *Denial {
	origin := x.Req.Header.Get("Origin")
	allowed := o.cfg.Allowed
	if r, ok := o.cfg.Routes[x.API]; ok && len(r.Allowed) > 0 {
		allowed = r.Allowed
	}
	if origin == "" || len(allowed) == 0 {
		return nil
	}
	any := slices.Contains(allowed, "*")
	if !any && !slices.Contains(allowed, origin) {
		return &Denial{Status: http.StatusForbidden, Detail: "This origin may not call this API.",
			Decision: event.Decision_DECISION_BLOCK, Reason: "origin not allowed: " + clip(origin, 128)}
	}
	h := http.Header{}
	if any && !o.cfg.AllowCredentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Vary", "Origin")
		if o.cfg.AllowCredentials && !any {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	preflight := x.Req.Method == http.MethodOptions && x.Req.Header.Get("Access-Control-Request-Method") != ""
	if !preflight {
		if len(o.cfg.ExposeHeaders) > 0 {
			h.Set("Access-Control-Expose-Headers", strings.Join(o.cfg.ExposeHeaders, ", "))
		}
		x.ResponseHeaders = h
		return nil
	}
	want := x.Req.Header.Get("Access-Control-Request-Method")
	if !slices.Contains(o.cfg.AllowMethods, want) {
		return &Denial{Status: http.StatusForbidden, Detail: "This method may not be used from a browser.",
			Decision: event.Decision_DECISION_BLOCK, Reason: "preflight for method " + clip(want, 16) + " not allowed"}
	}
	h.Set("Access-Control-Allow-Methods", strings.Join(o.cfg.AllowMethods, ", "))
	h.Set("Access-Control-Allow-Headers", strings.Join(o.cfg.AllowHeaders, ", "))
	h.Set("Access-Control-Max-Age", strconv.Itoa(int(o.cfg.MaxAge.Seconds())))
	return &Denial{Status: http.StatusNoContent, Decision: event.Decision_DECISION_ALLOW, Answer: true,
		Reason: "preflight answered", Headers: h, RawBody: []byte{}}
}
