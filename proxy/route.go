package proxy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// IDSegment replaces path segments that look like object ids in unconfigured routes.
const IDSegment = "{id}"

// maxTemplateSegments bounds the segments kept in an unconfigured template,
// so arbitrarily deep paths do not make arbitrarily many APIs.
const maxTemplateSegments = 8

// Templater maps a request's method and path to its API: the configured
// route template that matches, or for unconfigured paths the path with id-like
// segments (numbers, UUIDs, hex strings, long opaque tokens) replaced by {id}.
// It is immutable and safe for concurrent use.
type Templater struct {
	// routes by method, then by segment count.
	routes map[string]map[int][]route
}

type route struct {
	template string // "POST /orders/{id}"
	segs     []string
	params   []bool // segs[i] is a {param}
}

// NewTemplater parses routes of the form "METHOD /path/{param}/…". A method
// of "*" matches any method. The first matching route wins.
func NewTemplater(routes []string) (*Templater, error) {
	t := &Templater{routes: map[string]map[int][]route{}}
	for i, r := range routes {
		method, path, ok := strings.Cut(strings.TrimSpace(r), " ")
		path = strings.TrimSpace(path)
		if !ok || method == "" || !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("proxy.routes[%d]: %q, want \"METHOD /path/{param}\"", i, r)
		}
		method = strings.ToUpper(method)
		segs := splitPath(path)
		rt := route{template: method + " " + path, segs: segs, params: make([]bool, len(segs))}
		for j, s := range segs {
			if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
				if len(s) < 3 {
					return nil, fmt.Errorf("proxy.routes[%d]: %q has an unnamed parameter", i, r)
				}
				rt.params[j] = true
			} else if strings.ContainsAny(s, "{}") {
				return nil, fmt.Errorf("proxy.routes[%d]: %q: a parameter must be a whole segment", i, r)
			}
		}
		if t.routes[method] == nil {
			t.routes[method] = map[int][]route{}
		}
		t.routes[method][len(segs)] = append(t.routes[method][len(segs)], rt)
	}
	return t, nil
}

// API returns the route template of a request, method included. path is
// the decoded path; where it decodes to bytes that are not UTF-8
// ("%c0%af"), the template of an unconfigured path writes them as %XX
// (event.ValidUTF8), so that it is valid in events and anomalies.
func (t *Templater) API(method, path string) string {
	var segArr [maxTemplateSegments + 1]string
	segs := splitPathInto(segArr[:0], path)
	for _, m := range [2]string{method, "*"} {
		for _, rt := range t.routes[m][len(segs)] {
			if rt.match(segs) {
				return rt.template
			}
		}
	}
	return method + " " + event.ValidUTF8(templatePath(segs))
}

func (rt *route) match(segs []string) bool {
	for i, s := range segs {
		if !rt.params[i] && rt.segs[i] != s {
			return false
		}
	}
	return true
}

// splitPathInto appends the segments of p to dst, as splitPath does,
// without allocating while they fit in dst's capacity.
func splitPathInto(dst []string, p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return dst
	}
	for {
		seg, rest, ok := strings.Cut(p, "/")
		dst = append(dst, seg)
		if !ok {
			return dst
		}
		p = rest
	}
}

// splitPath splits "/a/b/" into ["a", "b"]; "/" gives none.
func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func templatePath(segs []string) string {
	if len(segs) == 0 {
		return "/"
	}
	var b strings.Builder
	for i, s := range segs {
		if i == maxTemplateSegments {
			b.WriteString("/{rest}")
			break
		}
		b.WriteByte('/')
		if looksLikeID(s) {
			b.WriteString(IDSegment)
		} else {
			b.WriteString(s)
		}
	}
	return b.String()
}

// looksLikeID reports whether a path segment is an object id rather than a
// name: all digits; a UUID; hex of 8 or more with a digit; or 20 or more
// characters mixing letters and digits (opaque tokens, base64 ids).
func looksLikeID(s string) bool {
	if s == "" {
		return false
	}
	var digits, hex, alpha, other int
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
			hex++
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			hex++
			alpha++
		case c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z':
			alpha++
		case c == '-' || c == '_' || c == '=' || c == '~' || c == '.':
			other++
		default:
			return false
		}
	}
	n := len(s)
	switch {
	case digits == n:
		return true
	case isUUID(s):
		return true
	case hex == n && n >= 8 && digits > 0:
		return true
	case n >= 20 && digits > 0 && alpha > 0:
		return true
	}
	return false
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// Configured returns the templates of the configured routes, as API
// returns them: the closed set that metrics may use as label values.
func (t *Templater) Configured() []string {
	var out []string
	for _, bySegs := range t.routes {
		for _, rs := range bySegs {
			for _, r := range rs {
				out = append(out, r.template)
			}
		}
	}
	slices.Sort(out)
	return out
}
