package detectors

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// site is a small website's traffic: 40 visitors reading pages and
// images and posting one form, from 0 to end.
func site(end time.Duration) []*event.RequestEvent {
	return crowd(3, "visitor", 40, map[string]float64{
		"GET /tienda/index.jsp":  0.02,
		"GET /tienda/pagar.jsp":  0.01,
		"POST /tienda/pagar.jsp": 0.005,
		"GET /tienda/logo.gif":   0.02,
		"GET /tienda/items/{id}": 0.01,
	}, 0, end)
}

// oneRequest is a single request from a client of its own at the given
// time; path defaults to the API's.
func oneRequest(ip string, at time.Duration, api, path string, status uint32) *event.RequestEvent {
	if path == "" {
		path = strings.Fields(api)[1]
	}
	ev := who{ip: ip, ua: browserUA, hdr: "h1:browser", lang: "en"}.event(at, api, path)
	ev.Status = status
	return ev
}

// TestProbingSingleRequest: a request whose route alone is evidence — a
// backup copy of a served page, a scanner target, a method the route
// never served — is flagged at once, from a client that sends nothing
// else, once the API's inventory is learned; a plain unknown route (a new
// page, a typo) is not, nor anything on a young API.
func TestProbingSingleRequest(t *testing.T) {
	at := 100 * time.Minute
	cases := []struct {
		name      string
		end, at   time.Duration
		api, path string
		status    uint32
		flag      bool
	}{
		{"a .bak copy of a served page", 2 * time.Hour, at, "GET /tienda/pagar.jsp.bak", "", 404, true},
		{"an .OLD copy, served 200", 2 * time.Hour, at, "GET /tienda/pagar.jsp.OLD", "", 200, true},
		{"an editor's ~ copy", 2 * time.Hour, at, "GET /tienda/index.jsp~", "", 404, true},
		{"a copy in a served directory, its name an id", 2 * time.Hour, at, "GET /tienda/{id}", "/tienda/4861362529278789730.Bak", 404, true},
		{"a .zip of a served page", 2 * time.Hour, at, "GET /tienda/pagar.jsp.zip", "", 404, true},
		{"a served file's source", 2 * time.Hour, at, "GET /tienda/pagar.jsp.java", "", 404, true},
		{"a path below a served file", 2 * time.Hour, at, "GET /tienda/logo.gif/{id}", "/tienda/logo.gif/4861362529278789730", 404, true},
		{"a served file asked as a directory", 2 * time.Hour, at, "GET /tienda/pagar.jsp", "/tienda/pagar.jsp/", 200, true},
		{"a case variant of a served page", 2 * time.Hour, at, "GET /tienda/PAGAR.JSP", "", 404, true},
		{"a git repository", 2 * time.Hour, at, "GET /.git/config", "", 404, true},
		{"path traversal", 2 * time.Hour, at, "GET /tienda/{rest}", "/tienda/../../etc/passwd", 400, true},
		{"PROPFIND on a GET-only page", 2 * time.Hour, at, "PROPFIND /tienda/index.jsp", "", 405, true},
		{"PUT on a page served with GET and POST", 2 * time.Hour, at, "PUT /tienda/pagar.jsp", "", 200, true},

		{"a new ordinary page", 2 * time.Hour, at, "GET /tienda/ofertas.jsp", "", 200, false},
		{"a new download in a served directory", 2 * time.Hour, at, "GET /tienda/catalogo.zip", "", 200, false},
		{"a typo", 2 * time.Hour, at, "GET /tienda/pgar.jsp", "", 404, false},
		{"a broken link to an image", 2 * time.Hour, at, "GET /tienda/banner.gif", "", 404, false},
		{"a new item", 2 * time.Hour, at, "GET /tienda/items/{id}", "/tienda/items/77", 404, false},
		{"a POST to a GET-only page", 2 * time.Hour, at, "POST /tienda/index.jsp", "", 405, false},
		{"a WordPress probe (internet background noise)", 2 * time.Hour, at, "GET /wp-login.php", "", 404, false},
		{"a source map of a served file", 2 * time.Hour, at, "GET /tienda/logo.gif.map", "", 404, false},
		{"a .bak copy on a young API", 40 * time.Minute, 30 * time.Minute, "GET /tienda/pagar.jsp.bak", "", 404, false},
		{"PROPFIND on a young API", 40 * time.Minute, 30 * time.Minute, "PROPFIND /tienda/index.jsp", "", 405, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := oneRequest("203.0.113.80", c.at, c.api, c.path, c.status)
			got := by(runAll(newEngine(t, nil), sorted(site(c.end), []*event.RequestEvent{ev})), ProbingName)
			if !c.flag {
				if len(got) > 0 {
					t.Fatalf("probing flagged %s", got[0].Summary)
				}
				return
			}
			if len(got) != 1 || got[0].Principal.Value != "203.0.113.80" || got[0].Deviations[0].Feature != "probe_route" {
				t.Fatalf("probing gave %v, want the one request flagged as probe_route", got)
			}
			if got[0].EventIds[0] != ev.Id {
				t.Errorf("the anomaly names %v, want the request %s", got[0].EventIds, ev.Id)
			}
			explained(t, got)
		})
	}
}

// TestProbingSingleRequestNeedsServedRoutes: a route served to fewer
// than WarmupPrincipals clients is not yet known, so an archive of it is
// a plain unknown route (an editor's copy, in a served directory, would
// not be); an established client that asks for a copy is
// judged on its accumulated evidence, not on one request.
func TestProbingSingleRequestNeedsServedRoutes(t *testing.T) {
	rare := who{ip: "198.51.100.7", ua: browserUA, hdr: "h1:browser", lang: "en"}
	flow := sorted(site(2*time.Hour),
		every(rare, "GET /tienda/rare.jsp", 10*time.Minute, 0, 2*time.Hour, nil),
		[]*event.RequestEvent{oneRequest("203.0.113.81", 100*time.Minute, "GET /tienda/rare.jsp.zip", "", 404)})
	if got := by(runAll(newEngine(t, nil), flow), ProbingName); len(got) > 0 {
		t.Fatalf("a copy of a page served to one client: probing flagged %s", got[0].Summary)
	}

	regular := who{ip: "198.51.100.8", ua: browserUA, hdr: "h1:browser", lang: "en"}
	flow = sorted(site(2*time.Hour), every(regular, "GET /tienda/index.jsp", time.Minute, 0, 2*time.Hour, func(i int, ev *event.RequestEvent) {
		if i == 100 {
			ev.Api, ev.Path, ev.Status = "GET /tienda/index.jsp.bak", "/tienda/index.jsp.bak", 404
		}
	}))
	if got := by(runAll(newEngine(t, nil), flow), ProbingName); len(got) > 0 {
		t.Fatalf("one copy asked for by an established client: probing flagged %s", got[0].Summary)
	}
}

// TestProbingSingleRequestTeachesNothing: requests flagged on their own
// do not teach the inventory, so a run of one-request scanners that the
// server answers 200 (CSIC 2010's) is flagged to the last.
func TestProbingSingleRequestTeachesNothing(t *testing.T) {
	flow := site(2 * time.Hour)
	var scans []*event.RequestEvent
	for i := range 12 {
		scans = append(scans, oneRequest("203.0.113."+strconv.Itoa(100+i), 90*time.Minute+time.Duration(i)*time.Minute, "PUT /tienda/pagar.jsp", "", 200))
	}
	got := by(runAll(newEngine(t, nil), sorted(flow, scans)), ProbingName)
	if len(got) != len(scans) {
		t.Fatalf("probing flagged %d of %d one-request PUT scanners, want all", len(got), len(scans))
	}
}
