package enforce

import (
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	in := `# a threat feed
192.0.2.1
198.51.100.7/24 ; SBL123
2001:db8::1   # an IPv6 address

::ffff:203.0.113.9
key k-leaked
sub alice
cidr 10.0.0.0/8
`
	keys, err := ParseList(strings.NewReader(in), "feed.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []Key{{KindIP, "192.0.2.1"}, {KindCIDR, "198.51.100.0/24"}, {KindIP, "2001:db8::1"}, {KindIP, "203.0.113.9"},
		{KindKey, "k-leaked"}, {KindSub, "alice"}, {KindCIDR, "10.0.0.0/8"}}
	if len(keys) != len(want) {
		t.Fatalf("got %v, want %v", keys, want)
	}
	for i := range want {
		if keys[i] != want[i] {
			t.Errorf("line %d: %v, want %v", i, keys[i], want[i])
		}
	}
}

// TestParseListErrors: a bad line is named by the list's name and its
// line number, and says what is wrong; nothing of the list is returned.
func TestParseListErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"not an address", "192.0.2.1\nexample.com\n", []string{"feed.txt:2:", `"example.com" is neither an address nor a network`}},
		{"bad network", "# x\n\n10.0.0.0/33\n", []string{"feed.txt:3:", `"10.0.0.0/33" is neither`}},
		{"unknown kind", "user bob\n", []string{"feed.txt:1:", `unknown kind "user"`}},
		{"bad ip of a kind", "ip 300.1.1.1\n", []string{"feed.txt:1:", "ip entry"}},
		{"too many fields", "ip 192.0.2.1 extra\n", []string{"feed.txt:1:", "3 fields"}},
		{"several", "x\n192.0.2.1\ny\n", []string{"feed.txt:1:", "feed.txt:3:"}},
		{"too many bad lines", strings.Repeat("bad\n", 20), []string{"feed.txt:10:", "stopped at line 10 after 10 bad lines"}},
		{"line too long", strings.Repeat("a", 70000) + "\n", []string{"feed.txt:1:", "too long"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseList(strings.NewReader(tt.in), "feed.txt")
			if err == nil || keys != nil {
				t.Fatalf("ParseList = %v, %v; want an error", keys, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// FuzzParseList: no input panics ParseList, and every key it returns is
// in canonical form (it parses again to itself). Seeds are in
// testdata/fuzz/FuzzParseList.
func FuzzParseList(f *testing.F) {
	f.Add("192.0.2.1\n10.0.0.0/8 ; x\nkey k\n# c\n")
	f.Fuzz(func(t *testing.T, in string) {
		keys, err := ParseList(strings.NewReader(in), "f")
		if err != nil {
			return
		}
		for _, k := range keys {
			back, err := ParseKey(k.Kind.String(), k.Value)
			if err != nil || back != k {
				t.Fatalf("%v parses again to %v, %v", k, back, err)
			}
		}
	})
}
