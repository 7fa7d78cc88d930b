package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSmugglingAttempts sends ambiguous framing over a raw socket to the
// proxy's Server. What net/http cannot frame unambiguously it refuses; what
// it would repair (a Content-Length with a Transfer-Encoding, obs-fold, a
// bare LF in the head, chunked on HTTP/1.0) the Server's wire view
// refuses; what is accepted reaches the upstream with one framing only, so
// the upstream cannot be desynchronised. Pipelined attempts are in
// server_test.go.
func TestSmugglingAttempts(t *testing.T) { forEngines(t, testSmugglingAttempts) }

func testSmugglingAttempts(t *testing.T, engine string) {
	seen := make(chan *http.Request, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		r.Header.Set("X-Test-Body", string(b))
		seen <- r
	}))
	defer up.Close()
	cfg := DefaultConfig()
	cfg.Upstream = up.URL
	cfg.Engine = engine
	p, err := New(cfg, []Check{inspectionForTests(cfg.Inspection)}, &collector{}, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(p, cfg, nil, slog.New(slog.DiscardHandler)).Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	for _, tc := range []struct {
		name, raw string
		status    int
		upstream  string // for accepted requests: how the upstream saw the body's framing
	}{
		{"CL and TE", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, ""},
		{"CL and TE, HTTP/1.0", "POST /x HTTP/1.0\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 400, ""},
		{"chunked alone", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200, "body=abc cl=[]"},
		{"two different CLs", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400, ""},
		{"signed CL", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd", 400, ""},
		{"TE other than chunked", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, ""},
		{"TE twice", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, ""},
		{"obfuscated TE", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501, ""},
		{"two Hosts", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, ""},
		// RFC 9112 §5.2 lets a server unfold or refuse; a proxy in front of
		// servers that do neither refuses.
		{"obs-fold", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n", 400, ""},
		{"obs-fold hiding a Content-Length", "POST /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Content-Length: 3\r\n\r\nabc", 400, ""},
		{"folded Content-Length", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 3\r\n\r\nabc", 400, ""},
		{"bare LF in the head", "POST /x HTTP/1.1\r\nHost: a\nContent-Length: 3\r\n\r\nabc", 400, ""},
		{"bare LF ending the head", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\nabc", 400, ""},
		{"CR without LF", "POST /x HTTP/1.1\r\nHost: a\r\nX-A: 1\rContent-Length: 3\r\n\r\nabc", 400, ""},
		{"HTTP/1.0 keep-alive with chunked", "POST /x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, ""},
		{"space before the colon", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc", 400, ""},
		{"bare LF in chunk size", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte(tc.raw)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.upstream == "" {
				select {
				case r := <-seen:
					t.Errorf("refused request reached the upstream: %v", r.Header)
				default:
				}
				return
			}
			r := <-seen
			if got := "body=" + r.Header.Get("X-Test-Body") + " cl=" + strings.Join(r.Header.Values("Content-Length"), ","); got != strings.Replace(tc.upstream, "cl=[]", "cl=", 1) {
				t.Errorf("upstream saw %s, want %s", got, tc.upstream)
			}
		})
	}
}
