package responder_test

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/pipeline/responder"
)

// TestParseASNTable: both forms are read, ranges split into prefixes, the
// most specific prefix wins a lookup, and bad lines are refused naming the
// line.
func TestParseASNTable(t *testing.T) {
	tab, err := responder.ParseASNTable(strings.NewReader(`# prefix → ASN
203.0.113.0/24,AS64500
198.51.100.0/24	64500
198.51.100.128/25 AS64501
2001:db8::/32,AS64502,example

3.0.0.0,3.1.255.255,Amazon AWS,http://www.amazon.com/aws/
10.0.0.1,10.0.0.6,Odd Range,
`))
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]string{"203.0.113.9": "AS64500 203.0.113.0/24", "198.51.100.9": "AS64500 198.51.100.0/24",
		"198.51.100.200": "AS64501 198.51.100.128/25", "2001:db8::1": "AS64502 2001:db8::/32", "3.1.2.3": "Amazon AWS 3.0.0.0/15",
		"10.0.0.4": "Odd Range 10.0.0.4/31", "10.0.0.7": " invalid Prefix", "192.0.2.1": " invalid Prefix"} {
		asn, p := tab.Lookup(netip.MustParseAddr(ip))
		if got := asn + " " + p.String(); got != want {
			t.Errorf("%s: %q, want %q", ip, got, want)
		}
	}
	if got := tab.Prefixes("Odd Range"); len(got) != 4 { // .1/32 .2/31 .4/31 .6/32
		t.Errorf("10.0.0.1-6 as %v", got)
	}
	for _, tt := range []struct{ in, want string }{
		{"203.0.113.0/33,AS1", "line 1: prefix"},
		{"# c\n203.0.113.0/24,ASX", `line 2: ASN "ASX"`},
		{"203.0.113.0/24,0", `line 1: ASN "0"`},
		{"203.0.113.0/24", "line 1: "},
		{"3.0.0.0,2.0.0.0,x", "line 1: range 3.0.0.0-2.0.0.0"},
		{"3.0.0.0,::1,x", "line 1: range"},
		{"3.0.0.0,3.0.0.9", "line 1: "},
		{"3.0.0.0,3.0.0.9,", "line 1: empty name"},
		{"bogus,3.0.0.9,x", "line 1: range start"},
		{"1.2.3.0/24,AS1\n1.2.3.0/24,AS2", "line 2: prefix 1.2.3.0/24 of AS2 already belongs to AS1"},
		{strings.Repeat("x", 5000), "line 1: "},
	} {
		_, err := responder.ParseASNTable(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%.40q: %v, want %q", tt.in, err, tt.want)
		}
	}
}

// TestParseASNTableIPCat: the datacenter list of ../shared/data
// (ipcat-datacenters.csv) is accepted as it is, when present.
func TestParseASNTableIPCat(t *testing.T) {
	const path = "../../../shared/data/cloud-ip-ranges/ipcat-datacenters.csv"
	if _, err := os.Stat(path); err != nil {
		t.Skip("no shared data")
	}
	tab, err := responder.LoadASNTable(path)
	if err != nil {
		t.Fatal(err)
	}
	if asn, _ := tab.Lookup(netip.MustParseAddr("3.0.0.1")); asn != "Amazon AWS" {
		t.Errorf("3.0.0.1 in %q, %d prefixes", asn, tab.Len())
	}
}

func FuzzParseASNTable(f *testing.F) {
	entries, _ := os.ReadDir("testdata/asn")
	for _, e := range entries {
		b, err := os.ReadFile("testdata/asn/" + e.Name())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, in string) {
		tab, err := responder.ParseASNTable(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("error names no line: %v", err)
			}
			return
		}
		// Every prefix's first address is found in its own group.
		for _, line := range strings.Split(in, "\n") {
			if p, err := netip.ParsePrefix(strings.TrimSpace(strings.Split(strings.Split(line, ",")[0], "\t")[0])); err == nil {
				if asn, _ := tab.Lookup(p.Masked().Addr()); asn == "" {
					t.Errorf("%s not found", p)
				}
			}
		}
	})
}
