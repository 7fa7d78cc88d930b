package proxy

import (
	"strings"
	"testing"
)

// frame feeds raw to a framer in pieces of size step and returns what it
// emitted and whether it is still following the connection.
func frame(raw string, step int) ([]Wire, bool) {
	var got []Wire
	f := wireFramer{maxHead: 8 << 10, emit: func(w Wire) { got = append(got, w) }}
	b := []byte(raw)
	for len(b) > 0 {
		n := min(step, len(b))
		f.feed(b[:n])
		b = b[n:]
	}
	return got, f.state != wireStopped
}

func TestWireFramerFollowsRequests(t *testing.T) {
	get := "GET /a HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n\r\n"
	for _, tc := range []struct {
		name      string
		raw       string
		heads     int
		ambiguous []int // indexes of heads flagged ambiguous
		following bool
	}{
		{"one GET", get, 1, nil, true},
		{"pipelined GETs", get + get + get, 3, nil, true},
		{"content-length body", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 31\r\n\r\n" +
			"GET /fake HTTP/1.1\r\nHost: b\r\n\r\n" + get, 2, nil, true},
		{"chunked body with extension and trailer", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;ext=1\r\nhello\r\n1f\r\nGET /fake HTTP/1.1\r\nHost: b\r\n\r\n\r\n0\r\nX-T: 1\r\n\r\n" + get, 2, nil, true},
		{"CL and TE", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get, 2, []int{0}, true},
		{"CL and TE, names in other case", "POST /a HTTP/1.1\r\nHost: a\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 1, []int{0}, true},
		{"HTTP/1.0 ignores TE and uses CL", "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc" + get, 2, []int{0}, true},
		{"bare LF lines", "GET /a HTTP/1.1\nHost: a\n\n" + get, 2, nil, true},
		{"leading empty lines", "\r\n\r\n" + get, 1, nil, true},
		{"obs-fold", "GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n" + get, 2, nil, true},
		{"h2c preface stops", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", 0, nil, false},
		{"TE not ending in chunked stops", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" + get, 1, nil, false},
		{"signed CL stops", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc" + get, 1, nil, false},
		{"header line without colon stops", "GET /a HTTP/1.1\r\nHost a\r\n\r\n" + get, 0, nil, false},
		{"bad chunk size stops", "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + get, 1, nil, false},
		{"endless head stops", "GET /a HTTP/1.1\r\n" + strings.Repeat("X-A: 1\r\n", 2000), 0, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Byte by byte and whole: a read boundary must not change
			// anything.
			for _, step := range []int{1, 7, len(tc.raw)} {
				got, following := frame(tc.raw, step)
				if len(got) != tc.heads || following != tc.following {
					t.Fatalf("step %d: %d heads, following %v; want %d, %v", step, len(got), following, tc.heads, tc.following)
				}
				for i, w := range got {
					want := ""
					for _, a := range tc.ambiguous {
						if a == i {
							want = "Content-Length with Transfer-Encoding"
						}
					}
					if w.Ambiguous != want {
						t.Errorf("step %d: head %d ambiguous %q, want %q", step, i, w.Ambiguous, want)
					}
					if !strings.HasPrefix(w.HeaderOrder, "h1:") || len(w.HeaderOrder) != 19 {
						t.Errorf("step %d: head %d fingerprint %q", step, i, w.HeaderOrder)
					}
				}
			}
		})
	}
}

func TestHeaderOrderFingerprint(t *testing.T) {
	fp := func(raw string) string {
		got, _ := frame(raw, len(raw))
		if len(got) != 1 {
			t.Fatalf("%d heads", len(got))
		}
		return got[0].HeaderOrder
	}
	a := fp("GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n")
	if b := fp("GET /other?q=1 HTTP/1.1\r\nHost: b\r\nUser-Agent: curl/8\r\nAccept: text/html\r\n\r\n"); a != b {
		t.Errorf("same names in the same order: %s != %s", a, b)
	}
	if b := fp("GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nUser-Agent: Mozilla/5.0\r\n\r\n"); a == b {
		t.Error("another order gave the same fingerprint")
	}
	if b := fp("GET / HTTP/1.1\r\nhost: a\r\nuser-agent: Mozilla/5.0\r\naccept: */*\r\n\r\n"); a == b {
		t.Error("another case gave the same fingerprint")
	}
}

// FuzzWireFramer feeds arbitrary bytes in arbitrary pieces: the framer must
// not panic, must not hold more than its head limit, and must give the
// same heads whatever the read boundaries.
func FuzzWireFramer(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint8(3))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), uint8(1))
	f.Add([]byte("POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\n\n"), uint8(5))
	f.Fuzz(func(t *testing.T, raw []byte, step uint8) {
		whole, _ := frame(string(raw), len(raw)+1)
		pieces, _ := frame(string(raw), int(step)+1)
		if len(whole) != len(pieces) {
			t.Fatalf("%d heads whole, %d in pieces of %d", len(whole), len(pieces), int(step)+1)
		}
		for i := range whole {
			if whole[i] != pieces[i] {
				t.Fatalf("head %d: %+v whole, %+v in pieces", i, whole[i], pieces[i])
			}
		}
	})
}
