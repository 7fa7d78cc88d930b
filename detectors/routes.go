package detectors

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// Unknown routes per principal (part of the probing detector).
//
// A scanner asks for what the API does not have: paths no route serves
// (answered 403, 404, 405 or 501) and methods the API never serves
// (WebDAV's PROPFIND and SEARCH, CONNECT). Each request of a principal is
// one trial of a sequential test: it counts as an unknown-route request
// when it misses on a route the principal has not missed on lately (a
// browser re-asking for one missing image counts once) or uses a method
// the API has never answered with success. Evidence accumulates over the
// principal's requests (halved every routeHalving of them, so it follows
// what the principal does now) and is tested, at every unknown-route
// request, against the share that established, well-behaved principals
// (mostly served well) show on this engine's traffic (never below probing.miss_floor): a
// binomial tail at or below max_p is an anomaly. At the default 2% floor
// a principal whose first four requests all miss is flagged at the
// fourth; a browser with a broken link or two never is.

// routeHalving is how many requests a principal's unknown-route counts
// cover before they are halved.
const routeHalving = 64

// strongRouteP is the p of a request that is evidence on its own
// (strongRoute): below every default threshold, above a scanner's user
// agent, which says more.
const strongRouteP = 1e-9

// maxMethods bounds the methods the engine learns (an attacker can send
// any token as a method).
const maxMethods = 32

// routeState is a principal's unknown-route evidence: 6 bytes, which
// fit in principalState's padding.
type routeState struct {
	Unknown, Requests uint8
	// Missed holds 8-bit hashes of the last two routes the principal
	// missed on, the latest first, so a repeated miss counts once (two
	// routes in 127 collide: such a miss does not count, which errs
	// towards flagging less; the bytes pay for principalState.Seq within
	// the 64-byte principal).
	Missed [2]uint8
}

// noteServedMethod learns the methods the API answers with success (2xx
// or 304), from established principals (sharing.go) only: a WebDAV
// scanner answered 207 does not teach that PROPFIND is served.
func (e *Engine) noteServedMethod(x *ctx) {
	s := x.ev.Status
	if !(s >= 200 && s < 300 || s == 304) || !e.established(x) {
		return
	}
	m := x.ev.Method
	if _, ok := e.st.Methods[m]; !ok && (len(e.st.Methods) >= maxMethods || len(m) > 16) {
		return
	}
	if e.st.Methods[m] == 0 {
		m = strings.Clone(m)
	}
	e.st.Methods[m] = sat32(e.st.Methods[m])
}

// unknownMethod reports whether the event's method is one the API has
// never served while it has served WarmupSamples requests with others.
func (e *Engine) unknownMethod(x *ctx) bool {
	if e.st.Methods[x.ev.Method] > 0 {
		return false
	}
	var served uint32
	for _, n := range e.st.Methods {
		served += n
	}
	return served >= uint32(e.cfg.WarmupSamples)
}

// unknownRoute scores the event for the principal's unknown-route test
// and returns whether it counted, why, and whether the request is
// evidence enough on its own (strongRoute).
func (e *Engine) unknownRoute(x *ctx) (counted bool, why string, strong bool) {
	r := &x.prin.Routes
	if r.Requests >= routeHalving {
		r.Requests /= 2
		r.Unknown /= 2
	}
	r.Requests++
	switch why = e.strongRoute(x); {
	case why != "":
		strong = true
	case e.unknownMethod(x):
		why = "method " + clipString(x.ev.Method, 16) + " never served"
	case x.miss || x.ev.Status == 501:
		h := uint8(hashStrings(x.ev.Api)) | 1 // never 0, the empty slot
		if r.Missed[0] == h || r.Missed[1] == h {
			return false, "", false
		}
		r.Missed[0], r.Missed[1] = h, r.Missed[0]
		why = fmt.Sprintf("%d on a route it had not tried", x.ev.Status)
	default:
		return false, "", false
	}
	r.Unknown++
	return true, why, strong
}

// routeFinding tests a principal's unknown-route evidence after an
// unknown-route request. Established principals teach the share they
// show, those that are mostly served well only: a principal whose
// requests are half unknown routes is no normal client, flagged or not.
func (d *probing) routeFinding(e *Engine, x *ctx, unknown bool, why string, strong bool, out []finding) []finding {
	r := &x.prin.Routes
	if x.learn && 2*r.Unknown < r.Requests && e.established(x) {
		e.st.Routes.add(unknown)
	}
	if strong {
		return append(out, finding{p: strongRouteP, deviations: []*event.Deviation{
			{Feature: "probe_route", Observed: 1, Expected: 0},
		}, summary: fmt.Sprintf("%s %s asked for %s %s, never served: %s",
			x.kind, x.val, clipString(x.ev.Method, 16), clipString(x.ev.Path, 80), why)})
	}
	if !unknown || float32(r.Unknown) < d.cfg.MinUnknown {
		return out
	}
	base := e.st.Routes.value(d.cfg.MissFloor)
	p := binomialTail(int(r.Unknown), int(r.Requests), base)
	if p > e.cfg.MaxP {
		return out
	}
	return append(out, finding{p: p, deviations: []*event.Deviation{
		{Feature: "unknown_routes", Observed: float64(r.Unknown), Expected: base * float64(r.Requests), Deviation: zBinomial(float64(r.Unknown), float64(r.Requests), base)},
	}, summary: fmt.Sprintf("%s %s asked for %d unknown routes or methods in %d requests (established clients: %.1f%%); last %s %s, %s",
		x.kind, x.val, r.Unknown, r.Requests, 100*base, clipString(x.ev.Method, 16), clipString(x.ev.Path, 80), why)})
}

func sat32(v uint32) uint32 {
	if v == ^uint32(0) {
		return v
	}
	return v + 1
}

// One request can be evidence enough. Once the engine has learned the
// API's inventory (an hour of traffic at least, and the route in question
// served to WarmupPrincipals principals, so a young API never flags), a
// principal that is not established is flagged at a single request for
// a route never served that is
//   - a variant of a known route: a backup, editor or archive copy
//     (pagar.jsp.old, index.jsp~, Copy of index.jsp, .index.jsp.swp,
//     app.zip), the known file with an extension appended
//     (pagar.jsp.java), a path below a known file (logo.gif/x), or the
//     known route in other letter case (not a listing of a directory
//     the API serves files below: sites serve those to few clients
//     each, and ordinary visitors would be flagged);
//   - a well-known scanner target (.git/, .env, phpmyadmin, WEB-INF,
//     _vti_bin, /etc/passwd, path traversal, .DS_Store …);
//   - a method outside GET, HEAD, OPTIONS and POST that the route was
//     never served with, on a route served with others (PUT, DELETE,
//     PROPFIND or TRACE on a read-only page).
// A plain unknown route (a new page, a typo, a broken link) is none of
// these and still needs the accumulated evidence above.

// editorSuffixes are the endings of backup and editor copies and of
// server-side sources and includes, lowercase: a copy of a known route
// or one in a known directory.
var editorSuffixes = []string{"~", ".bak", ".old", ".orig", ".original", ".swp", ".swo", ".tmp", ".temp",
	".save", ".sav", ".back", ".backup", ".bck", ".bk", ".copy", ".prev", ".dist", ".inc", ".java", ".class"}

// archiveSuffixes are the endings of archives and source copies,
// lowercase: a variant only of a known route or directory itself (a new
// download in a known directory is not).
var archiveSuffixes = []string{".zip", ".tar.gz", ".tgz", ".tar", ".rar", ".7z", ".tar.bz2", ".src"}

// copyPrefixes begin a copy's file name, lowercase.
var copyPrefixes = []string{"copy of ", "copy_of_", "copy-of-", "copy of", "backup of ", "backup_"}

// scannerSegments are path segments, lowercase, that only scanners ask
// for on an API that never served them. WordPress's (wp-admin,
// wp-login.php, xmlrpc.php) are not among them: every public site draws
// them from passing bots all day, and a site's ordinary visitors would
// count among the flagged; they count as unknown routes, evidence that
// accumulates.
var scannerSegments = map[string]bool{".git": true, ".svn": true, ".hg": true, ".bzr": true, ".env": true,
	".ds_store": true, ".htaccess": true, ".htpasswd": true, ".aws": true, ".ssh": true, "id_rsa": true,
	"phpmyadmin": true, "web-inf": true, "meta-inf": true, "cfide": true, "_vti_bin": true, "_vti_pvt": true,
	"_vti_cnf": true, "_vti_log": true, "_vti_script": true, "_vti_txt": true, "_vti_inf.html": true,
	"_private": true, "_cti_pvt": true, "msadc": true, "iisadmpwd": true, "iisadmin": true, "iissamples": true,
	"server-status": true, "server-info": true, "web.config": true, "boot.ini": true, "win.ini": true,
	"passwd": true, "shadow": true, ".bash_history": true, "config.php.bak": true, "phpinfo.php": true}

// scannerExtensions are file extensions, lowercase, of server software
// that scanners probe for (Lotus Domino databases, IIS password pages and
// indexing extensions); not executables, which sites offer for download.
var scannerExtensions = []string{".nsf", ".htr", ".ida", ".idq", ".htw", ".printer"}

// pathInfoExtensions are file extensions of scripts that commonly serve
// the paths below them (index.php/article): a path below one is no
// variant.
var pathInfoExtensions = []string{".php", ".cgi", ".pl", ".py", ".asp", ".aspx", ".do", ".action", ".fcgi"}

// strongRoute reports why the event's route alone is evidence of
// probing, or "": a route never served that is a variant of a known
// route, a scanner target, or a method never served on a known route.
func (e *Engine) strongRoute(x *ctx) string {
	if x.api == nil || e.familiar(x) || e.st.Last-e.st.Start < e.clk.len[winLong] {
		return ""
	}
	method, path, ok := strings.Cut(x.ev.Api, " ")
	if !ok || !strings.HasPrefix(path, "/") {
		return ""
	}
	if x.api.Served >= uint32(e.cfg.WarmupPrincipals) {
		// A known route: only its raw path can still be a variant.
		return e.rawVariant(path, x.ev.Path)
	}
	if why := scannerTarget(path, x.ev.Path); why != "" {
		return why
	}
	if why := e.rawVariant(path, x.ev.Path); why != "" {
		return why
	}
	if why := e.variant(path); why != "" {
		return why
	}
	switch method {
	case "GET", "HEAD", "OPTIONS", "POST":
		return ""
	}
	if x.api.Served == 0 {
		if m := e.knownPath(path); m != "" {
			return "method " + clipString(method, 16) + " never served on " + clipString(path, 80) + " (served with " + m + ")"
		}
	}
	return ""
}

// rawVariant reports a variant the route's template hides: a suffix on
// an id-like name (4861362529278789730.bak is {id}), or a served file
// asked for as a directory (pagar.jsp/, which templates as pagar.jsp).
func (e *Engine) rawVariant(path, raw string) string {
	r := strings.TrimSuffix(raw, "/")
	if r == "" || !strings.HasPrefix(r, "/") {
		return ""
	}
	if r == path {
		if len(r) == len(raw) {
			return ""
		}
		_, name := splitLast(path)
		if j := strings.LastIndexByte(name, '.'); j > 0 && !slices.Contains(pathInfoExtensions, strings.ToLower(name[j:])) &&
			e.knownPath(path) != "" {
			return "a path below the served file " + clipString(path, 80)
		}
		return ""
	}
	if _, name := splitLast(r); !strings.ContainsAny(name, ".~#") {
		return ""
	}
	return e.variant(r)
}

// familiar reports whether the principal is established across APIs
// (sharing.go's thresholds, with the span its requests cover in place of
// the pair's age): it is judged on its accumulated evidence, not on one
// request.
func (e *Engine) familiar(x *ctx) bool {
	p := x.prin
	if !x.learn || p == nil || int(p.Gaps)+1 < establishedRequests ||
		float64(p.GapMean)*float64(p.Gaps)*1e9 < float64(e.clk.len[winShort]) {
		return false
	}
	r, ok := e.st.Risk[x.pkey]
	return !ok || r.Risk*math.Exp2(-float64(x.t-r.At)/float64(e.cfg.RiskHalfLife)) < establishedMaxRisk
}

// scannerTarget reports a well-known scanner target in the route's
// template path or the raw path.
func scannerTarget(path, raw string) string {
	lower := strings.ToLower(raw)
	if strings.Contains(lower, "/../") || strings.HasSuffix(lower, "/..") || strings.Contains(lower, "..\\") ||
		strings.Contains(lower, "/etc/passwd") {
		return "path traversal"
	}
	rest := strings.ToLower(path)
	for rest != "" {
		var seg string
		seg, rest, _ = strings.Cut(strings.TrimPrefix(rest, "/"), "/")
		if scannerSegments[seg] {
			return "a well-known scanner target (" + clipString(seg, 32) + ")"
		}
		if strings.HasPrefix(seg, ".env") || strings.HasPrefix(seg, "phpmyadmin") {
			return "a well-known scanner target (" + clipString(seg, 32) + ")"
		}
		for _, ext := range scannerExtensions {
			if strings.HasSuffix(seg, ext) {
				return "a file type scanners probe for (" + ext + ")"
			}
		}
	}
	return ""
}

// variant reports whether path, never served, is a variant of a route
// or directory the API serves, and which.
func (e *Engine) variant(path string) string {
	lower := strings.ToLower(path)
	dir, name := splitLast(path)
	lname := strings.ToLower(name)
	for _, s := range editorSuffixes {
		if strings.HasSuffix(lname, s) {
			base := path[:len(path)-len(s)]
			if e.knownPath(base) != "" || e.knownDir(base) {
				return "a " + s + " copy of " + clipString(base, 80)
			}
			bdir, bname := splitLast(base)
			if bname == "" || strings.HasPrefix(bname, ".") && e.knownPath(bdir+"/"+bname[1:]) != "" {
				return "a " + s + " copy of " + clipString(bdir+"/"+strings.TrimPrefix(bname, "."), 80)
			}
			if e.knownDir(bdir) {
				return "a " + s + " copy in the served directory " + clipString(bdir+"/", 80)
			}
		}
	}
	for _, s := range archiveSuffixes {
		if strings.HasSuffix(lname, s) {
			if base := path[:len(path)-len(s)]; e.knownPath(base) != "" || e.knownDir(base) {
				return "a " + s + " copy of " + clipString(base, 80)
			}
		}
	}
	for _, p := range copyPrefixes {
		if strings.HasPrefix(lname, p) && e.knownPath(dir+"/"+name[len(p):]) != "" {
			return "a copy of " + clipString(dir+"/"+name[len(p):], 80)
		}
	}
	if len(name) > 2 && name[0] == '#' && name[len(name)-1] == '#' && e.knownPath(dir+"/"+name[1:len(name)-1]) != "" {
		return "an editor's copy of " + clipString(dir+"/"+name[1:len(name)-1], 80)
	}
	// The known file with an extension appended (pagar.jsp.java), a
	// source map aside.
	if i := strings.LastIndexByte(name, '.'); i > 0 && strings.IndexByte(name[:i], '.') > 0 && lname[i:] != ".map" {
		if base := dir + "/" + name[:i]; e.knownPath(base) != "" {
			return "the served file " + clipString(base, 80) + " with " + clipString(name[i:], 16) + " appended"
		}
	}
	// A path below a served file (logo.gif/x, pagar.jsp/).
	for i := 1; i < len(path); i++ {
		if path[i] != '/' {
			continue
		}
		_, seg := splitLast(path[:i])
		if j := strings.LastIndexByte(seg, '.'); j > 0 && !slices.Contains(pathInfoExtensions, strings.ToLower(seg[j:])) &&
			e.knownPath(path[:i]) != "" {
			return "a path below the served file " + clipString(path[:i], 80)
		}
	}
	if lower != path && e.knownPath(lower) != "" {
		return "a case variant of " + clipString(lower, 80)
	}
	return ""
}

// splitLast splits "/a/b/c" into "/a/b" and "c" ("/c" into "" and "c").
func splitLast(path string) (dir, name string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", path
	}
	return path[:i], path[i+1:]
}

// knownMethods are the methods a known route is looked up under.
var knownMethods = []string{"GET", "POST", "HEAD", "PUT", "PATCH", "DELETE"}

// knownPath returns a method the API served path with to
// WarmupPrincipals principals, or "".
func (e *Engine) knownPath(path string) string {
	if path == "" {
		path = "/"
	}
	for _, m := range knownMethods {
		if a := e.st.APIs[m+" "+path]; a != nil && a.Served >= uint32(e.cfg.WarmupPrincipals) {
			return m
		}
	}
	return ""
}

// knownDir reports whether some known route lies below dir ("" is the
// root). It walks the APIs, but only for a request already suspect.
func (e *Engine) knownDir(dir string) bool {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for k, a := range e.st.APIs {
		if a.Served < uint32(e.cfg.WarmupPrincipals) {
			continue
		}
		if _, p, ok := strings.Cut(k, " "); ok && len(p) > len(prefix) && strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// noteServed counts a principal served on the event's API, once per
// (API, principal) pair, when it may teach and the request was not
// itself evidence of probing (an established principal teaches even
// then: a method newly served to clients who know the API becomes known).
func (e *Engine) noteServed(x *ctx, strong bool) {
	s := x.ev.Status
	if x.pair == nil || x.pair.FirstNs != x.t || !x.learn || !(s >= 200 && s < 300 || s == 304) {
		return
	}
	if strong && !e.familiar(x) {
		return
	}
	x.api.Served = sat32(x.api.Served)
}
