package responder

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ASNTable maps announced prefixes to the autonomous system (or network
// operator) that announces them, for ASN groups (group_asn.go). Build it
// with ParseASNTable or LoadASNTable; it is immutable.
type ASNTable struct {
	byPrefix map[netip.Prefix]string
	prefixes map[string][]netip.Prefix // ASN → its prefixes, sorted
	lens4    []int                     // the IPv4 prefix lengths present, longest first
	lens6    []int
}

// maxASNLine bounds a line of the ASN file.
const maxASNLine = 4096

// LoadASNTable reads the ASN file at path (see ParseASNTable).
func LoadASNTable(path string) (*ASNTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("responder.asn_file: %w", err)
	}
	defer f.Close()
	t, err := ParseASNTable(f)
	if err != nil {
		return nil, fmt.Errorf("responder.asn_file %s: %w", path, err)
	}
	return t, nil
}

// ParseASNTable reads an ASN list: one entry a line, fields separated by
// a comma, a tab or spaces; blank lines and lines starting with # are
// skipped. An entry is either
//
//	PREFIX,ASN[,anything]     203.0.113.0/24,AS64500 (or 64500)
//	START,END,NAME[,URL]      3.0.0.0,3.1.255.255,Amazon AWS,http://… (ipcat's datacenters CSV)
//
// In the second form the range is split into prefixes and NAME is the
// group (an operator rather than an AS number). A prefix announced by two
// groups, a bad address, prefix, range or ASN is an error naming the line.
func ParseASNTable(r io.Reader) (*ASNTable, error) {
	t := &ASNTable{byPrefix: map[netip.Prefix]string{}, prefixes: map[string][]netip.Prefix{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), maxASNLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := splitASNLine(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: %q: want PREFIX,ASN or START,END,NAME", n, clip(line))
		}
		if strings.Contains(f[0], "/") {
			p, err := netip.ParsePrefix(f[0])
			if err != nil {
				return nil, fmt.Errorf("line %d: prefix %q: %w", n, clip(f[0]), err)
			}
			asn, err := parseASN(f[1])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if err := t.add(p.Masked(), asn); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("line %d: %q: a range needs START,END,NAME", n, clip(line))
		}
		lo, err := netip.ParseAddr(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: range start %q: %w", n, clip(f[0]), err)
		}
		hi, err := netip.ParseAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: range end %q: %w", n, clip(f[1]), err)
		}
		lo, hi = lo.Unmap(), hi.Unmap()
		if lo.Is4() != hi.Is4() || hi.Less(lo) {
			return nil, fmt.Errorf("line %d: range %s-%s: want START ≤ END of one family", n, lo, hi)
		}
		name := strings.TrimSpace(f[2])
		if name == "" {
			return nil, fmt.Errorf("line %d: empty name", n)
		}
		for _, p := range rangePrefixes(lo, hi) {
			if err := t.add(p, name); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	seen4, seen6 := map[int]bool{}, map[int]bool{}
	for p := range t.byPrefix {
		if p.Addr().Is4() {
			seen4[p.Bits()] = true
		} else {
			seen6[p.Bits()] = true
		}
	}
	for b := range seen4 {
		t.lens4 = append(t.lens4, b)
	}
	for b := range seen6 {
		t.lens6 = append(t.lens6, b)
	}
	slices.Sort(t.lens4)
	slices.Reverse(t.lens4)
	slices.Sort(t.lens6)
	slices.Reverse(t.lens6)
	for _, ps := range t.prefixes {
		slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	}
	return t, nil
}

// splitASNLine splits a line at commas, or else at tabs, or else at runs
// of spaces (a name after a comma may hold spaces).
func splitASNLine(line string) []string {
	var f []string
	switch {
	case strings.Contains(line, ","):
		f = strings.Split(line, ",")
	case strings.Contains(line, "\t"):
		f = strings.Split(line, "\t")
	default:
		f = strings.Fields(line)
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

func parseASN(s string) (string, error) {
	v := strings.TrimPrefix(strings.TrimPrefix(s, "AS"), "as")
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 {
		return "", fmt.Errorf("ASN %q: want AS1 to AS4294967295 (or the number)", clip(s))
	}
	return "AS" + strconv.FormatUint(n, 10), nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (t *ASNTable) add(p netip.Prefix, asn string) error {
	if old, ok := t.byPrefix[p]; ok {
		if old == asn {
			return nil
		}
		return fmt.Errorf("prefix %s of %s already belongs to %s", p, clip(asn), clip(old))
	}
	t.byPrefix[p] = asn
	t.prefixes[asn] = append(t.prefixes[asn], p)
	return nil
}

// rangePrefixes returns the fewest prefixes covering lo..hi exactly.
func rangePrefixes(lo, hi netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	total := lo.BitLen()
	for {
		// The largest prefix starting at lo that ends within hi.
		b := total
		for b > 0 {
			p, _ := lo.Prefix(b - 1)
			if p.Addr() != lo || lastOf(p).Compare(hi) > 0 {
				break
			}
			b--
		}
		p := netip.PrefixFrom(lo, b)
		out = append(out, p)
		last := lastOf(p)
		if last.Compare(hi) >= 0 {
			return out
		}
		lo = last.Next()
		if len(out) > 256 { // a range no real list holds; the rest is dropped
			return out
		}
	}
}

// lastOf returns the last address of p.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	host := p.Addr().BitLen() - p.Bits()
	off := 16 - p.Addr().BitLen()/8
	for i := 15; i >= off && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// Lookup returns the ASN announcing a, and the most specific prefix it is
// announced under, or "" when the table has none.
func (t *ASNTable) Lookup(a netip.Addr) (string, netip.Prefix) {
	if t == nil {
		return "", netip.Prefix{}
	}
	a = a.Unmap()
	lens := t.lens6
	if a.Is4() {
		lens = t.lens4
	}
	for _, b := range lens {
		p, err := a.Prefix(b)
		if err != nil {
			continue
		}
		if asn, ok := t.byPrefix[p]; ok {
			return asn, p
		}
	}
	return "", netip.Prefix{}
}

// Prefixes returns the prefixes asn announces.
func (t *ASNTable) Prefixes(asn string) []netip.Prefix {
	if t == nil {
		return nil
	}
	return t.prefixes[asn]
}

// Len returns the number of prefixes.
func (t *ASNTable) Len() int { return len(t.byPrefix) }
