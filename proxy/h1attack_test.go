package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// smuggledResponse is a complete response an upstream sends where no
// response is due; a proxy that keeps the connection hands it to the
// next client instead of that client's own.
const smuggledResponse = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"

// TestNativeUpstreamUnsolicitedBytes: bytes an upstream sends beyond a
// response (a body on a HEAD response, or anything on an idle keep-alive
// connection) never reach another request: the connection is not reused.
func TestNativeUpstreamUnsolicitedBytes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first string // the request that draws the extra bytes
		late  bool   // they come after the response, not with it
	}{
		{"body on HEAD", "HEAD", false},
		{"body on 204", "DELETE", false},
		{"after the response", "GET", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					switch {
					case req.Method == tc.first && req.URL.Path == "/first" && tc.first == "HEAD":
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 38\r\n\r\n"+smuggledResponse)
					case req.Method == tc.first && req.URL.Path == "/first" && tc.first == "DELETE":
						_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n"+smuggledResponse)
					case req.URL.Path == "/first":
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						time.Sleep(50 * time.Millisecond)
						_, _ = io.WriteString(c, smuggledResponse)
					default:
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					}
				}
			})
			ns := serveNative(t, up, nil)
			c1, br1 := dialRaw(t, ns.addr)
			_, _ = io.WriteString(c1, tc.first+" /first HTTP/1.1\r\nHost: a\r\n\r\n")
			readBody(t, br1, tc.first)
			if tc.late {
				time.Sleep(400 * time.Millisecond) // well after the upstream's 50 ms
			}
			// Another client, another connection: it must get its own
			// response, with the body and the request body both ways.
			for i, req := range []string{
				"GET /second HTTP/1.1\r\nHost: a\r\n\r\n",
				"POST /third HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
			} {
				c2, br2 := dialRaw(t, ns.addr)
				_, _ = io.WriteString(c2, req)
				resp, body := readBody(t, br2, "GET")
				if resp.StatusCode != 200 || body != "ok" {
					t.Fatalf("request %d after %s: %d %q, want 200 \"ok\" (the upstream's bytes beyond a response were taken for this one)",
						i+2, tc.name, resp.StatusCode, body)
				}
			}
		})
	}
}

// TestNativeUpstreamClosedIdleBeforeBody: a request with a body, which is
// never sent twice, does not go out on an idle connection the upstream
// has closed: it gets a fresh one instead of a 502.
func TestNativeUpstreamClosedIdleBeforeBody(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(req.Body)
		// Keep-alive promised, then the connection closes while idle.
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(b)+2)+"\r\n\r\nok"+string(b))
	})
	ns := serveNative(t, up, nil)
	c, br := dialRaw(t, ns.addr)
	for i := range 3 {
		_, _ = io.WriteString(c, "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
		resp, body := readBody(t, br, "POST")
		if resp.StatusCode != 200 || body != "okabc" {
			t.Fatalf("POST %d: %d %q, want 200 \"okabc\"", i+1, resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond) // the upstream's close arrives
	}
}

// TestNativeClientGoneMidResponse: a client that goes away while the
// upstream holds its response open frees the upstream connection, as the
// net/http engine does by cancelling the request's context.
func TestNativeClientGoneMidResponse(t *testing.T) {
	for _, tc := range []struct{ name, answer string }{
		{"waiting for the head", ""},
		{"in the body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			freed := make(chan time.Duration, 1)
			up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, tc.answer)
				start := time.Now()
				_, _ = br.ReadByte() // the proxy closing the connection ends it
				freed <- time.Since(start)
			})
			ns := serveNative(t, up, nil)
			c, _ := dialRaw(t, ns.addr)
			_, _ = io.WriteString(c, "GET /stall HTTP/1.1\r\nHost: a\r\n\r\n")
			time.Sleep(100 * time.Millisecond)
			c.Close()
			select {
			case <-freed:
			case <-time.After(3 * time.Second):
				t.Fatal("the upstream connection was still held 3s after the client went away")
			}
		})
	}
}

// TestNativeStreamOutlivesReadTimeout: the watch for the client leaving
// does not take the read timeout's end for it; a response streamed past
// it goes on.
func TestNativeStreamOutlivesReadTimeout(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 8\r\n\r\nbegin;")
		time.Sleep(400 * time.Millisecond)
		_, _ = io.WriteString(c, "ok")
	})
	ns := serveNative(t, up, func(cfg *Config) { cfg.ReadTimeout = 200 * time.Millisecond })
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := readBody(t, br, "GET"); resp.StatusCode != 200 || body != "begin;ok" {
		t.Fatalf("%d %q, want 200 \"begin;ok\"", resp.StatusCode, body)
	}
}

// bodySwapCheck replaces the request body with one longer than the
// Content-Length the client sent, as a check that rewrote a body and
// forgot the length would.
type bodySwapCheck struct{ body string }

func (bodySwapCheck) Name() string { return "body-swap" }
func (b bodySwapCheck) Check(x *Exchange) *Denial {
	x.Req.Body = io.NopCloser(strings.NewReader(b.body))
	return nil
}

// TestNativeBodyBeyondContentLength: the upstream leg sends exactly the
// Content-Length it declares; a body that disagrees is an error, never
// bytes the upstream reads as a request of their own.
func TestNativeBodyBeyondContentLength(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"longer", "abcGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"longer, past the buffer", "abc" + strings.Repeat("x", 3*pendingMax) + "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"shorter", "ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			paths := make(chan string, 4)
			up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					paths <- req.URL.Path
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			ns := serveNativeChecks(t, up, nil, []Check{bodySwapCheck{tc.body}})
			c, br := dialRaw(t, ns.addr)
			_, _ = io.WriteString(c, "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
			resp, err := http.ReadResponse(br, nil)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				if resp.StatusCode == 200 && tc.name == "shorter" {
					t.Errorf("a body shorter than its Content-Length was forwarded: 200")
				}
			}
			time.Sleep(200 * time.Millisecond)
			close(paths)
			for path := range paths {
				if path != "/p" {
					t.Fatalf("the upstream read a request for %s out of the body", path)
				}
			}
		})
	}
}

// TestNativeInterimResponsesBounded: an upstream that answers with
// interim responses without end gets a 502 after a few, as net/http's
// transport allows 5, instead of holding the exchange.
func TestNativeInterimResponsesBounded(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		for range 1000 {
			if _, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"); err != nil {
				return
			}
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	ns := serveNative(t, up, nil)
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "GET /hints HTTP/1.1\r\nHost: a\r\n\r\n")
	interim := 0
	for {
		resp, body := readBody(t, br, "GET")
		if resp.StatusCode >= 200 {
			if resp.StatusCode != http.StatusBadGateway || interim > 5 {
				t.Fatalf("%d interim responses then %d %q, want at most 5 and a 502", interim, resp.StatusCode, body)
			}
			return
		}
		interim++
	}
}

// TestNativeNoInterimToHTTP10: an HTTP/1.0 client, which takes the first
// response it reads for the answer, gets no interim response (RFC 9110
// §15.2), so that the final one is not read as the next request's.
func TestNativeNoInterimToHTTP10(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "+
				strconv.Itoa(len(req.URL.Path))+"\r\n\r\n"+req.URL.Path)
		}
	})
	ns := serveNative(t, up, nil)
	c, br := dialRaw(t, ns.addr)
	for _, path := range []string{"/one", "/two"} {
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
		resp, body := readBody(t, br, "GET")
		if resp.StatusCode != 200 || body != path {
			t.Fatalf("HTTP/1.0 GET %s: %d %q", path, resp.StatusCode, body)
		}
	}
}

// TestNativeTrailerValuesSanitised: a trailer value with a CR (from the
// upstream, or set by a handler) reaches the client with it replaced, as
// net/http writes fields, never as a line break that splits the response.
func TestNativeTrailerValuesSanitised(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"2\r\nok\r\n0\r\nX-T: a\rX-Evil: 1\r\n\r\n")
	})
	ns := serveNative(t, up, nil)
	c, _ := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "GET /t HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(c)
	for i := range len(raw) {
		if raw[i] == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			t.Fatalf("a bare CR reached the client: %q", raw)
		}
	}
	if !strings.Contains(string(raw), "X-T: a X-Evil: 1\r\n") {
		t.Errorf("trailer not forwarded as one field: %q", raw)
	}
}

// TestNativeMalformedBodyIsNoGatewayTimeout: a client's chunked body that
// breaks off malformed is answered 502 at once, as the net/http engine
// answers it, not 504 as if the upstream had not answered in time.
func TestNativeMalformedBodyIsNoGatewayTimeout(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = io.Copy(io.Discard, br) // reads whatever comes, answers nothing
	})
	ns := serveNative(t, up, nil)
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY")
	if resp, _ := readBody(t, br, "POST"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
}

// formEchoCheck answers with what the request's form says, as a check that
// reads r.FormValue would see it.
type formEchoCheck struct{}

func (formEchoCheck) Name() string { return "form-echo" }
func (formEchoCheck) Check(x *Exchange) *Denial {
	return &Denial{Status: http.StatusForbidden, Decision: event.Decision_DECISION_BLOCK,
		Headers: http.Header{"X-Form-A": {x.Req.FormValue("a")}}}
}

// TestNativeRequestStateNotReused: the native engine reuses a connection's
// *http.Request, so whatever net/http keeps on a request (a parsed form,
// the pattern a mux matched) must start empty on every request: the second
// request of a keep-alive connection is never judged on the first one's
// form.
func TestNativeRequestStateNotReused(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	ns := serveNativeChecks(t, up.URL, nil, []Check{formEchoCheck{}})
	c, br := dialRaw(t, ns.addr)
	for _, a := range []string{"first", "second", "third"} {
		if _, err := io.WriteString(c, "GET /p?a="+a+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, _ := readBody(t, br, "GET")
		if got := resp.Header.Get("X-Form-A"); got != a {
			t.Fatalf("request with a=%s was judged on a=%q", a, got)
		}
	}
}
