package clients

import (
	"github.com/apiguard/apiguard/proxy"
	"net/http"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// DecoyName is the name of the decoy check in events.
const DecoyName = "decoy"

// Decoy answers requests to decoy paths with an ordinary-looking 404 and
// marks their events (decision block, check "decoy") so that the
// pipeline sees who probes for what does not exist.
type Decoy struct {
	exact    map[string]bool
	prefixes []string
	cfg      proxy.DecoyConfig
}

// NewDecoy returns the check; cfg must be valid.
func NewDecoy(cfg proxy.DecoyConfig) *Decoy {
	d := &Decoy{exact: map[string]bool{}, cfg: cfg}
	for _, p := range cfg.Paths {
		if pre, ok := strings.CutSuffix(p, "/*"); ok {
			d.prefixes = append(d.prefixes, pre+"/")
			continue
		}
		d.exact[p] = true
	}
	return d
}

// Name implements Check.
func (*Decoy) Name() string { return DecoyName }

// Check implements Check.
func (d *Decoy) Check(x *proxy.Exchange) *proxy.Denial {
	p := x.Req.URL.Path
	hit := d.exact[p]
	for _, pre := range d.prefixes {
		hit = hit || strings.HasPrefix(p, pre)
	}
	if !hit {
		return nil
	}
	return &proxy.Denial{
		Status: http.StatusNotFound, Decision: event.Decision_DECISION_BLOCK, Reason: "decoy path " + clip(p, 128),
		RawBody: []byte(d.cfg.Body), RawType: d.cfg.ContentType,
	}
}
