package enforce

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// maxListErrors is how many bad lines ParseList reports before it stops.
const maxListErrors = 10

// ParseList reads a list of principals, one a line, as threat feeds and
// operators write them: an address ("192.0.2.1", "2001:db8::1"), a network
// ("198.51.100.0/24"), or a kind and a value ("key k-123", "sub alice",
// "ip 192.0.2.1"). Blank lines and comments ("#" or ";" to the end of the
// line, as in DROP-style feeds) are skipped. Values come back in canonical
// form. name is the list's name in errors, which give the line:
// "feed.txt:12: …"; up to ten bad lines are reported, and none of the list
// is returned if any is bad.
func ParseList(r io.Reader, name string) ([]Key, error) {
	var keys []Key
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		k, ok, err := parseListLine(sc.Text())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, line, err))
			if len(errs) == maxListErrors {
				errs = append(errs, fmt.Errorf("%s: stopped at line %d after %d bad lines", name, line, maxListErrors))
				return nil, errors.Join(errs...)
			}
			continue
		}
		if ok {
			keys = append(keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s:%d: %w", name, line+1, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return keys, nil
}

// parseListLine parses one line of a list; ok is false for a blank line
// or a comment.
func parseListLine(s string) (Key, bool, error) {
	if i := strings.IndexAny(s, "#;"); i >= 0 {
		s = s[:i]
	}
	fields := strings.Fields(s)
	switch len(fields) {
	case 0:
		return Key{}, false, nil
	case 1:
		v := fields[0]
		if p, err := netip.ParsePrefix(v); err == nil {
			k, err := ParseKey(KindCIDR.String(), p.String())
			return k, err == nil, err
		}
		if _, err := netip.ParseAddr(v); err == nil {
			k, err := ParseKey(KindIP.String(), v)
			return k, err == nil, err
		}
		return Key{}, false, fmt.Errorf("%q is neither an address nor a network (for another kind write \"KIND VALUE\", e.g. \"key %s\")", v, v)
	case 2:
		k, err := ParseKey(fields[0], fields[1])
		if err != nil {
			return Key{}, false, err
		}
		return k, true, nil
	default:
		return Key{}, false, fmt.Errorf("%d fields, want an address, a network or \"KIND VALUE\"", len(fields))
	}
}
