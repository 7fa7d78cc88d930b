package proxy

import (
	"strings"
	"testing"
)

func TestHeaderOrderFingerprintOffline(t *testing.T) {
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n",
		"POST /x HTTP/1.1\r\nhost: b\r\ncontent-length: 0\r\nX-API-Key: k.s\r\nX-API-Key: again\r\n\r\n",
	} {
		got := frame(raw, len(raw), false)
		if len(got.wires) != 1 {
			t.Fatalf("%d heads", len(got.wires))
		}
		head, _, _ := strings.Cut(raw, "\r\n\r\n")
		var names []string
		for _, l := range strings.Split(head, "\r\n")[1:] {
			name, _, _ := strings.Cut(l, ":")
			names = append(names, name)
		}
		if off := HeaderOrderFingerprint(names); off != got.wires[0].HeaderOrder {
			t.Errorf("%q: offline %s, framer %s", raw, off, got.wires[0].HeaderOrder)
		}
	}
}
