package proxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// DecoyName is the name of the decoy check in events.
const DecoyName = "decoy"

// DecoyConfig lists paths no real client calls (a leaked-looking admin
// route, /.env, an old API version). A path ending in "/*" matches what is
// under it.
type DecoyConfig struct {
	Paths []string `yaml:"paths"`
	// Body is what a decoy answers, with status 404; make it look like the
	// upstream's own 404. The default is net/http's.
	Body        string `yaml:"body"`
	ContentType string `yaml:"content_type"`
}

// DefaultDecoyConfig returns no decoys and net/http's 404 page.
func DefaultDecoyConfig() DecoyConfig {
	return DecoyConfig{Body: "404 page not found\n", ContentType: "text/plain; charset=utf-8"}
}

// Validate reports the first bad field by its config key.
func (c DecoyConfig) Validate() error {
	for i, p := range c.Paths {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("proxy.decoys.paths[%d]: %q, want a path starting with /", i, p)
		}
	}
	return nil
}

// Decoy answers requests to decoy paths with an ordinary-looking 404 and
// marks their events (decision block, check "decoy") so that the
// pipeline sees who probes for what does not exist.
type Decoy struct {
	exact    map[string]bool
	prefixes []string
	cfg      DecoyConfig
}

// NewDecoy returns the check; cfg must be valid.
func NewDecoy(cfg DecoyConfig) *Decoy {
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
func (d *Decoy) Check(x *Exchange) *Denial {
	p := x.Req.URL.Path
	hit := d.exact[p]
	for _, pre := range d.prefixes {
		hit = hit || strings.HasPrefix(p, pre)
	}
	if !hit {
		return nil
	}
	return &Denial{
		Status: http.StatusNotFound, Decision: event.Decision_DECISION_BLOCK, Reason: "decoy path " + clip(p, 128),
		RawBody: []byte(d.cfg.Body), RawType: d.cfg.ContentType,
	}
}
