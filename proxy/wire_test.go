package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// framed is what a framer made of raw fed in pieces.
type framed struct {
	wires     []Wire
	delivered []byte // what net/http would have read
	state     int
}

// frame feeds raw to a framer in pieces of size step.
func frame(raw string, step int, h2c bool) framed {
	var out framed
	f := wireFramer{maxHead: 8 << 10, h2c: h2c, emit: func(w Wire) bool {
		out.wires = append(out.wires, w)
		return true
	}}
	b := []byte(raw)
	for len(b) > 0 {
		n := min(step, len(b))
		piece := bytes.Clone(b[:n])
		k, tail := f.feed(piece)
		out.delivered = append(out.delivered, piece[:k]...)
		out.delivered = append(out.delivered, tail...)
		b = b[n:]
	}
	out.state = f.state
	return out
}

// agreesWithNetHTTP reads fr.delivered as net/http's server would and
// fails if it reads a request the framer did not frame, or frame for
// another method and target: the proxy would then check one request and
// forward another. It stops where the server would close the connection.
func agreesWithNetHTTP(t *testing.T, fr framed) {
	t.Helper()
	if fr.state == wireH2 {
		return // net/http's HTTP/2 server has the connection
	}
	br := bufio.NewReader(bytes.NewReader(fr.delivered))
	afterPOST := false
	for i := 0; ; i++ {
		if afterPOST {
			// net/http skips up to 4 CR or LF after a POST.
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			_, _ = br.Discard(n)
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if i >= len(fr.wires) {
			t.Fatalf("net/http read request %d (%s %q), which the wire view did not frame", i, req.Method, req.RequestURI)
		}
		if w := fr.wires[i]; w.target != requestID(req.Method, req.RequestURI) {
			t.Fatalf("net/http read request %d as %s %q, the wire view framed another", i, req.Method, req.RequestURI)
		} else if w.Ambiguous != "" {
			return // refused, and the connection closed
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		afterPOST = req.Method == "POST"
	}
}

func TestWireFramer(t *testing.T) {
	get := "GET /a HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n\r\n"
	for _, tc := range []struct {
		name   string
		raw    string
		h2c    bool
		clean  int    // heads framed clean
		reason string // why the head after them is refused, if one is
		cut    bool   // nothing more is handed over
		// what net/http sees when raw comes in one read; "" for all of raw
		sees string
	}{
		{name: "one GET", raw: get, clean: 1},
		{name: "pipelined GETs", raw: get + get + get, clean: 3},
		{name: "content-length body", raw: "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 31\r\n\r\n" +
			"GET /fake HTTP/1.1\r\nHost: b\r\n\r\n" + get, clean: 2},
		{name: "chunked body with extension and trailer", raw: "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;ext=1\r\nhello\r\n1f\r\nGET /fake HTTP/1.1\r\nHost: b\r\n\r\n\r\n0\r\nX-T: 1\r\n\r\n" + get, clean: 2},
		{name: "chunk size with whitespace", raw: "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n" + get, clean: 2},
		{name: "leading empty lines", raw: "\r\n\r\n" + get, clean: 1},
		{name: "OPTIONS *", raw: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" + get, clean: 2},
		{name: "HTTP/1.0 with a body", raw: "POST /a HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc" + get, clean: 2},
		{name: "h2c preface", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04", h2c: true},

		{name: "CL and TE", raw: "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get,
			reason: reasonCLWithTE, cut: true, sees: "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "CL and TE, names in other case", raw: get + "POST /a HTTP/1.1\r\nHost: a\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
			clean: 1, reason: reasonCLWithTE, cut: true, sees: get + "POST /a HTTP/1.1\r\nHost: a\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n"},
		{name: "HTTP/1.0 with TE and CL", raw: "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc" + get,
			reason: reasonTE10, cut: true, sees: "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"},
		{name: "HTTP/1.0 keep-alive with chunked", raw: "GET /a HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + get,
			reason: reasonTE10, cut: true, sees: "GET /a HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "TE not chunked", raw: "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" + get,
			reason: reasonTEOther, cut: true, sees: "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{name: "TE twice", raw: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			reason: reasonTEOther, cut: true, sees: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "signed CL", raw: "POST /a HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc" + get,
			reason: reasonCLMalformed, cut: true, sees: "POST /a HTTP/1.1\r\nContent-Length: +3\r\n\r\n"},
		{name: "CL twice", raw: "POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
			reason: reasonCLRepeated, cut: true, sees: "POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"},

		{name: "obs-fold", raw: "GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n" + get,
			reason: reasonObsFold, cut: true, sees: "GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n"},
		{name: "obs-fold with a tab hiding a Content-Length", raw: get + "GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\tContent-Length: 31\r\n\r\n" + get,
			clean: 1, reason: reasonObsFold, cut: true, sees: get + "GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n"},
		{name: "whitespace before the first header", raw: "GET /a HTTP/1.1\r\n Host: a\r\n\r\n",
			reason: reasonObsFold, cut: true, sees: "GET /a HTTP/1.1\r\n\r\n"},
		{name: "bare LF in a header line", raw: "GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\nX-B: 2\r\n\r\n" + get,
			reason: reasonBareLF, cut: true, sees: "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "bare LF ending the head", raw: "GET /a HTTP/1.1\r\nHost: a\r\n\n" + get,
			reason: reasonBareLF, cut: true, sees: "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "bare LF lines", raw: "GET /a HTTP/1.1\nHost: a\n\n" + get,
			reason: reasonBareLF, cut: true, sees: wirePoison},
		{name: "CR without LF", raw: "GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n",
			reason: reasonBareCR, cut: true, sees: "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "NUL in a value", raw: "GET /a HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n",
			reason: reasonCTL, cut: true, sees: "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "header line without colon", raw: "GET /a HTTP/1.1\r\nHost a\r\n\r\n" + get,
			reason: reasonHeaderLine, cut: true, sees: "GET /a HTTP/1.1\r\n\r\n"},
		{name: "space before the colon", raw: "GET /a HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
			reason: reasonHeaderLine, cut: true, sees: "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "two spaces in the request line", raw: get + "GET  /a HTTP/1.1\r\nHost: a\r\n\r\n",
			clean: 1, reason: reasonRequestLine, cut: true, sees: get + wirePoison},
		{name: "HTTP/1.2", raw: "GET /a HTTP/1.2\r\nHost: a\r\n\r\n", reason: reasonVersion, cut: true, sees: wirePoison},
		{name: "h2c preface when h2c is off", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", reason: reasonVersion, cut: true, sees: wirePoison},
		{name: "h2c preface after a request", raw: get + "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", h2c: true,
			clean: 1, reason: reasonVersion, cut: true, sees: get + wirePoison},
		{name: "h2c preface with a header", raw: "PRI * HTTP/2.0\r\nHost: a\r\n\r\nSM\r\n\r\n", h2c: true,
			reason: reasonPreface, cut: true, sees: "PRI * HTTP/2.0\r\n\r\n"},
		{name: "h2c preface cut short", raw: "PRI * HTTP/2.0\r\n\r\nSX\r\n\r\n", h2c: true,
			reason: reasonPreface, cut: true, sees: "PRI * HTTP/2.0\r\n\r\nS"},
		{name: "endless head", raw: "GET /a HTTP/1.1\r\n" + strings.Repeat("X-A: 1\r\n", 2000),
			// Cut at the start of the line the limit falls in.
			reason: reasonHeadTooLong, cut: true, sees: "GET /a HTTP/1.1\r\n" + strings.Repeat("X-A: 1\r\n", (8<<10-17)/8) + "\r\n"},

		{name: "bad chunk size", raw: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + get,
			clean: 1, cut: true, sees: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "bare LF in a chunk size", raw: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
			clean: 1, cut: true, sees: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3"},
		{name: "space before a chunk extension", raw: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3 ;x\r\nabc\r\n0\r\n\r\n",
			clean: 1, cut: true, sees: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3 "},
		{name: "no CRLF after chunk data", raw: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
			clean: 1, cut: true, sees: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc"},
		{name: "bare LF ending the trailer", raw: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\n" + get,
			clean: 1, cut: true, sees: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n"},
		{name: "obs-fold in the trailer", raw: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n y\r\n\r\n" + get,
			clean: 1, cut: true, sees: "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			whole := frame(tc.raw, len(tc.raw), tc.h2c)
			sees := tc.sees
			if sees == "" {
				sees = tc.raw
			}
			if string(whole.delivered) != sees {
				t.Errorf("net/http sees %q\nwant %q", clipBytes(whole.delivered), clipBytes([]byte(sees)))
			}
			// A read boundary may change what net/http sees of a refused
			// line, never the heads.
			for _, step := range []int{1, 7, len(tc.raw)} {
				got := frame(tc.raw, step, tc.h2c)
				clean := 0
				for clean < len(got.wires) && got.wires[clean].Ambiguous == "" {
					clean++
				}
				reason := ""
				if clean < len(got.wires) {
					reason = got.wires[clean].Ambiguous
				}
				if clean != tc.clean || reason != tc.reason || len(got.wires) > clean+1 || (got.state == wireCut) != tc.cut {
					t.Fatalf("step %d: %d clean heads, then %q (%d in all), cut %v; want %d, %q, %v",
						step, clean, reason, len(got.wires), got.state == wireCut, tc.clean, tc.reason, tc.cut)
				}
				for i, w := range got.wires {
					if (w.HeaderOrder != "" || i < clean) && (!strings.HasPrefix(w.HeaderOrder, "h1:") || len(w.HeaderOrder) != 19) {
						t.Errorf("step %d: head %d fingerprint %q", step, i, w.HeaderOrder)
					}
				}
				if !slices.Equal(got.wires, whole.wires) {
					t.Errorf("step %d: heads %+v, whole %+v", step, got.wires, whole.wires)
				}
				agreesWithNetHTTP(t, got)
			}
		})
	}
}

// clipBytes shortens b for a failure message.
func clipBytes(b []byte) string {
	if len(b) > 160 {
		return fmt.Sprintf("%s…(%d bytes)…%s", b[:80], len(b), b[len(b)-60:])
	}
	return string(b)
}

func TestHeaderOrderFingerprint(t *testing.T) {
	fp := func(raw string) string {
		got := frame(raw, len(raw), false)
		if len(got.wires) != 1 {
			t.Fatalf("%d heads", len(got.wires))
		}
		return got.wires[0].HeaderOrder
	}
	a := fp("GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n")
	// SHA-256 of "Host,User-Agent,Accept": the names as sent, joined by ",".
	if a != "h1:fe444ad14866d725" {
		t.Fatalf("fingerprint %q", a)
	}
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

// pipeConn is a net.Conn whose Read hands out data, in reads of at most
// step bytes, then blocks on its own side until its deadline.
type pipeConn struct {
	net.Conn
	data     []byte
	step     int
	deadline time.Time
}

func (c *pipeConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		if c.deadline.IsZero() {
			return 0, io.EOF
		}
		time.Sleep(time.Until(c.deadline))
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(p[:min(len(p), c.step)], c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *pipeConn) SetReadDeadline(t time.Time) error { c.deadline = t; return nil }

// serveWire reads requests from w as the server does, pairing each with
// its head (begin, next, end), and returns the paths it would have
// served and the refusal it met.
func serveWire(t *testing.T, w *wireConn) (served []string, refused string) {
	t.Helper()
	br := bufio.NewReaderSize(w, 4096)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return served, refused
		}
		framed, clean := w.begin(req.Method, req.RequestURI)
		x, _ := w.next()
		if !framed || clean != (x.Ambiguous == "") {
			t.Fatalf("%s: framed %v, clean %v, wire %+v", req.URL.Path, framed, clean, x)
		}
		if !clean {
			w.end()
			return served, x.Ambiguous
		}
		_, _ = io.Copy(io.Discard, req.Body)
		served = append(served, req.URL.Path)
		w.end()
	}
}

// TestWireConnFollowsAnyPipelineDepth is the smuggling bypass at
// the connection: whatever the number of requests pipelined before a
// Content-Length with Transfer-Encoding, and whatever the read sizes, the
// requests before it are framed, it is refused, and nothing after it is
// handed over.
func TestWireConnFollowsAnyPipelineDepth(t *testing.T) {
	for _, depth := range []int{0, 15, 16, 17, 100, 1000} {
		for _, step := range []int{1, 13, 4096, 1 << 20} {
			t.Run(fmt.Sprintf("%d/%d", depth, step), func(t *testing.T) {
				var raw strings.Builder
				var want []string
				for i := range depth {
					fmt.Fprintf(&raw, "GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
					want = append(want, fmt.Sprintf("/p%d", i))
				}
				raw.WriteString("POST /clte HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX")
				raw.WriteString("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
				w := newWireConn(&pipeConn{data: []byte(raw.String()), step: step}, 36<<10, false)
				served, refused := serveWire(t, w)
				if !slices.Equal(served, want) || refused != reasonCLWithTE {
					t.Fatalf("served %d (want %d), refused %q", len(served), len(want), refused)
				}
				if n, err := w.Read(make([]byte, 64)); n != 0 || err != io.EOF {
					t.Errorf("after the refusal: %d bytes, %v; want io.EOF", n, err)
				}
			})
		}
	}
}

// TestWireConnBoundsPending: heads framed ahead of their handlers are
// bounded, and the first beyond the bound is refused, never passed
// unexamined.
func TestWireConnBoundsPending(t *testing.T) {
	var raw strings.Builder
	for i := range maxWirePending + 5 {
		fmt.Fprintf(&raw, "GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
	}
	w := newWireConn(&pipeConn{data: []byte(raw.String()), step: 1 << 20}, 36<<10, false)
	buf := make([]byte, 1<<20)
	n, err := w.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Index(raw.String(), fmt.Sprintf("GET /p%d ", maxWirePending+1)); n != want {
		t.Errorf("handed over %d bytes, want %d: up to the end of the refused head", n, want)
	}
	if pending := len(w.queue) - w.qhead; pending != maxWirePending+1 || w.queue[maxWirePending].Ambiguous != reasonTooManyPending {
		t.Fatalf("%d pending, the last %+v", pending, w.queue[len(w.queue)-1])
	}
}

// TestWireConnWaitsForEarlierRequests: after a refusal, reads wait on the
// socket while the requests before it are served (an io.EOF would cancel
// them), and end in io.EOF after.
func TestWireConnWaitsForEarlierRequests(t *testing.T) {
	c := &pipeConn{data: []byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX: 1\r\n y\r\n\r\n"), step: 4096}
	w := newWireConn(c, 36<<10, false)
	buf := make([]byte, 4096)
	n, err := w.Read(buf)
	if want := "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX: 1\r\n\r\n"; err != nil || string(buf[:n]) != want {
		t.Fatalf("read %q, %v; want %q", buf[:n], err, want)
	}
	if framed, clean := w.begin("GET", "/a"); !framed || !clean {
		t.Fatalf("GET /a: framed %v, clean %v", framed, clean)
	}
	// The background read while /a is served waits on the socket.
	_ = w.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := w.Read(buf[:1]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a read while /a is served: %v, want the socket's deadline", err)
	}
	w.end()
	if _, clean := w.begin("GET", "/b"); clean {
		t.Fatal("GET /b is clean")
	}
	if x, _ := w.next(); x.Ambiguous != reasonObsFold {
		t.Fatalf("GET /b: %+v", x)
	}
	w.end()
	if _, err := w.Read(buf); err != io.EOF {
		t.Fatalf("after /b: %v, want io.EOF", err)
	}
}

// TestWireConnRefusesUnpairedRequests: a request net/http parsed that the
// view did not frame (the two disagree on the framing) is refused, and
// nothing more is handed over.
func TestWireConnRefusesUnpairedRequests(t *testing.T) {
	w := newWireConn(&pipeConn{data: []byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"), step: 4096}, 36<<10, false)
	if _, err := w.Read(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if framed, clean := w.begin("GET", "/b"); !framed || clean {
		t.Fatalf("GET /b first: framed %v, clean %v", framed, clean)
	}
	if x, _ := w.next(); x.Ambiguous != reasonUnframed {
		t.Fatalf("GET /b first: %+v", x)
	}
	w.end()
	if _, err := w.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("after: %v, want io.EOF", err)
	}
	// A request without any framed head, on a fresh connection.
	w = newWireConn(&pipeConn{step: 1}, 36<<10, false)
	if x, ok := w.next(); !ok || x.Ambiguous != reasonUnframed {
		t.Fatalf("unpaired next: %+v, %v", x, ok)
	}
}

// TestWireConnHTTP2: after the h2c preface the connection's bytes pass
// and its requests carry no Wire.
func TestWireConnHTTP2(t *testing.T) {
	raw := "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00"
	w := newWireConn(&pipeConn{data: []byte(raw), step: 14}, 36<<10, true)
	got, err := io.ReadAll(io.LimitReader(w, int64(len(raw))))
	if err != nil || string(got) != raw {
		t.Fatalf("read %q, %v", got, err)
	}
	if framed, clean := w.begin("GET", "/"); framed || !clean {
		t.Errorf("HTTP/2 request: framed %v, clean %v", framed, clean)
	}
	if _, ok := w.next(); ok {
		t.Error("an HTTP/2 request has a Wire")
	}
}

// FuzzWireFramer feeds arbitrary bytes in arbitrary pieces: the framer
// must not panic, must give the same heads whatever the read boundaries,
// and net/http, reading what the framer hands over, must read no request
// the framer did not frame as that request (see agreesWithNetHTTP).
func FuzzWireFramer(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint8(3))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), uint8(1))
	f.Add([]byte("POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\n\n"), uint8(5))
	f.Fuzz(func(t *testing.T, raw []byte, step uint8) {
		whole := frame(string(raw), len(raw)+1, false)
		pieces := frame(string(raw), int(step)+1, false)
		if !slices.Equal(whole.wires, pieces.wires) {
			t.Fatalf("heads whole %+v, in pieces of %d %+v", whole.wires, int(step)+1, pieces.wires)
		}
		agreesWithNetHTTP(t, whole)
		agreesWithNetHTTP(t, pieces)
	})
}

// headConn is a net.Conn whose every Read returns the next of its pieces,
// round and round.
type headConn struct {
	net.Conn
	pieces [][]byte
	i      int
}

func (c *headConn) Read(p []byte) (int, error) {
	n := copy(p, c.pieces[c.i%len(c.pieces)])
	c.i++
	return n, nil
}

// benchHead is a browser-like API request head.
const benchHead = "GET /products/12345?expand=1 HTTP/1.1\r\nHost: api.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36\r\n" +
	"Accept: application/json\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n" +
	"X-API-Key: partner-7.secret\r\nConnection: keep-alive\r\n\r\n"

// BenchmarkWireConn is the wire view's work for one request: the head
// read through a wireConn (whole, or split across two reads) and its Wire
// paired with the request and taken by the handler.
func BenchmarkWireConn(b *testing.B) {
	head := []byte(benchHead)
	for _, bc := range []struct {
		name   string
		pieces [][]byte
	}{
		{"whole", [][]byte{head}},
		{"split", [][]byte{head[:70], head[70:]}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := newWireConn(&headConn{pieces: bc.pieces}, 36<<10, true)
			buf := make([]byte, 4096)
			b.SetBytes(int64(len(head)))
			b.ReportAllocs()
			for b.Loop() {
				for range bc.pieces {
					if _, err := w.Read(buf); err != nil {
						b.Fatal(err)
					}
				}
				if _, clean := w.begin("GET", "/products/12345?expand=1"); !clean {
					b.Fatal("refused")
				}
				if x, ok := w.next(); !ok || x.Ambiguous != "" {
					b.Fatalf("wire %+v, %v", x, ok)
				}
				w.end()
			}
		})
	}
}
