package clients

import (
	"github.com/apiguard/apiguard/proxy"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// OriginsName is the name of the origins check in events.
const OriginsName = "origins"

// Origins refuses requests from origins a route does not allow (403),
// answers CORS preflights itself (204 with the allowed methods and
// headers, never forwarded), and adds the CORS headers to the upstream's
// answers to allowed origins.
type Origins struct {
	cfg proxy.OriginsConfig
}

// NewOrigins returns the check; cfg must be valid.
func NewOrigins(cfg proxy.OriginsConfig) *Origins { return &Origins{cfg: cfg} }

// Name implements Check.
func (*Origins) Name() string { return OriginsName }

// Check implements Check.
func (o *Origins) Check(x *proxy.Exchange) *proxy.Denial {
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
		return &proxy.Denial{Status: http.StatusForbidden, Detail: "This origin may not call this API.",
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
		return &proxy.Denial{Status: http.StatusForbidden, Detail: "This method may not be used from a browser.",
			Decision: event.Decision_DECISION_BLOCK, Reason: "preflight for method " + clip(want, 16) + " not allowed"}
	}
	h.Set("Access-Control-Allow-Methods", strings.Join(o.cfg.AllowMethods, ", "))
	h.Set("Access-Control-Allow-Headers", strings.Join(o.cfg.AllowHeaders, ", "))
	h.Set("Access-Control-Max-Age", strconv.Itoa(int(o.cfg.MaxAge.Seconds())))
	return &proxy.Denial{Status: http.StatusNoContent, Decision: event.Decision_DECISION_ALLOW, Answer: true,
		Reason: "preflight answered", Headers: h, RawBody: []byte{}}
}
