package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/testutil"
)

// framingProxy is a running proxy process in front of an upstream that
// records every request it is sent.
type framingProxy struct {
	addr string
	mu   sync.Mutex
	seen []string // "METHOD /path", in the order the upstream got them
}

// startFramingProxy runs `apiguard proxy` with a read_header_timeout long
// enough that an answer within a few seconds cannot be the timeout's.
func startFramingProxy(t *testing.T) *framingProxy {
	t.Helper()
	fp := &framingProxy{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fp.mu.Lock()
		fp.seen = append(fp.seen, r.Method+" "+r.URL.Path)
		fp.mu.Unlock()
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(upstream.Close)
	dir := t.TempDir()
	srv := testutil.JetStream(t, -1, "")
	cfgPath := filepath.Join(dir, "apiguard.yaml")
	cfg := "nats:\n  partitions: 1\nproxy:\n  read_header_timeout: 60s\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	fp.addr = freeAddr(t)
	start(t, "proxy", "proxy", "--config", cfgPath, "--nats", srv.ClientURL(), "--listen", fp.addr,
		"--upstream", upstream.URL, "--spool-dir", filepath.Join(dir, "spool"), "--metrics-listen", "off")
	testutil.Eventually(t, 20*time.Second, func() bool {
		resp, err := http.Get("http://" + fp.addr + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "the proxy never served /ready")
	return fp
}

// upstreamSaw returns what the upstream received whose path starts with
// prefix.
func (fp *framingProxy) upstreamSaw(prefix string) []string {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	var out []string
	for _, s := range fp.seen {
		if _, path, _ := strings.Cut(s, " "); strings.HasPrefix(path, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// exchange writes raw in one write on a new connection (without closing
// its side) and reads responses until the proxy closes the connection. It
// returns the statuses, whether the last response said Connection: close,
// and how long the last response took to come.
func (fp *framingProxy) exchange(t *testing.T, raw string) (statuses []int, closeSaid bool, last time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", fp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	sent := time.Now()
	werr := make(chan error, 1)
	// Written from another goroutine: a deep pipeline's answers are read
	// while it is still being written.
	go func() {
		_, err := c.Write([]byte(raw))
		werr <- err
	}()
	br := bufio.NewReader(c)
	for {
		if _, err := br.Peek(1); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after %d responses: %v; want the connection closed", len(statuses), err)
			}
			break
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading response %d: %v", len(statuses)+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		closeSaid = resp.Close
		last = time.Since(sent)
	}
	if err := <-werr; err != nil && len(raw) < 64<<10 {
		// A write cut short by the close is fine for a long pipeline.
		t.Logf("write: %v", err)
	}
	return statuses, closeSaid, last
}

// pipelinedGETs returns n requests for /<prefix>-<i>, as the issue sent
// them.
func pipelinedGETs(prefix string, n int) (string, []string) {
	var b strings.Builder
	var want []string
	for i := range n {
		fmt.Fprintf(&b, "GET /%s-%d HTTP/1.1\r\nHost: x\r\n\r\n", prefix, i)
		want = append(want, fmt.Sprintf("GET /%s-%d", prefix, i))
	}
	return b.String(), want
}

// TestFramingRefusedOverRawSockets sends, over raw TCP to a running proxy
// process, framing that a strict HTTP/1.1 parser refuses: each is answered
// 400 and the connection is closed after it, the requests before it in the
// same write are served, and the upstream never receives the refused
// request nor anything after it.
func TestFramingRefusedOverRawSockets(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	fp := startFramingProxy(t)

	const clte = "POST /clte HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX"
	type tc struct {
		name   string
		raw    string
		prefix string   // what the upstream saw under this prefix …
		want   []string // … must be exactly this
	}
	var cases []tc
	for _, depth := range []int{0, 15, 16, 17, 100, 1000} {
		prefix := fmt.Sprintf("d%d", depth)
		gets, want := pipelinedGETs(prefix, depth)
		cases = append(cases, tc{fmt.Sprintf("CL and TE after %d pipelined requests", depth),
			gets + strings.Replace(clte, "/clte", "/"+prefix+"-clte", 1), "/" + prefix, want})
	}
	cases = append(cases,
		tc{"obs-fold", "GET /fold HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", "/fold", nil},
		// Unfolded, the Content-Length line is part of X-A's value and a
		// second request follows; a parser that does not unfold reads it
		// as the first request's body.
		tc{"obs-fold hiding a Content-Length",
			"GET /foldcl HTTP/1.1\r\nHost: x\r\nX-A: y\r\n Content-Length: 38\r\n\r\n" +
				"GET /foldcl-second HTTP/1.1\r\nHost: x\r\n\r\n", "/foldcl", nil},
		tc{"obs-fold after pipelined requests", "GET /foldp-0 HTTP/1.1\r\nHost: x\r\n\r\n" +
			"GET /foldp-1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\nGET /foldp-2 HTTP/1.1\r\nHost: x\r\n\r\n",
			"/foldp", []string{"GET /foldp-0"}},
		tc{"bare LF in a header line", "GET /lf HTTP/1.1\r\nHost: x\r\nX-A: 1\nX-B: 2\r\n\r\n", "/lf", nil},
		tc{"bare LF ending the head", "GET /lfend HTTP/1.1\r\nHost: x\r\n\nGET /lfend-second HTTP/1.1\r\nHost: x\r\n\r\n",
			"/lfend", nil},
		tc{"bare LF on every line", "GET /lfall HTTP/1.1\nHost: x\n\n", "/lfall", nil},
		tc{"HTTP/1.0 keep-alive with chunked", "GET /h10 HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n" +
			"Transfer-Encoding: chunked\r\n\r\nGET /h10-second HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
			"/h10", nil},
		tc{"HTTP/1.0 keep-alive with a chunked body", "POST /h10body HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /h10body-second HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
			"/h10body", nil},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			statuses, closeSaid, _ := fp.exchange(t, tc.raw)
			want := append(slices.Repeat([]int{200}, len(tc.want)), 400)
			if !slices.Equal(statuses, want) {
				t.Fatalf("statuses %v, want %d × 200 then 400, then the connection closed", statuses, len(tc.want))
			}
			if !closeSaid {
				t.Error("the 400 did not say Connection: close")
			}
			if got := fp.upstreamSaw(tc.prefix); !slices.Equal(got, tc.want) {
				t.Errorf("the upstream received %d requests %v, want %d", len(got), clipList(got), len(tc.want))
			}
		})
	}

	// Heads that never complete: the bytes already show they are
	// malformed, so the 400 comes at once, not after read_header_timeout
	// (60 s here).
	for _, tc := range []struct{ name, raw string }{
		{"unfinished obs-fold", "GET /slowfold HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded"},
		{"unfinished bare LF", "GET /slowlf HTTP/1.1\r\nHost: x\r\nX-A: 1\nX-B"},
		{"unfinished request line with bare LF", "GET /slowline HTTP/1.1\nHost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			statuses, _, took := fp.exchange(t, tc.raw)
			if !slices.Equal(statuses, []int{400}) {
				t.Fatalf("statuses %v, want 400 then the connection closed", statuses)
			}
			if took > 5*time.Second {
				t.Errorf("the 400 took %v", took)
			}
			if got := fp.upstreamSaw("/slow"); len(got) != 0 {
				t.Errorf("the upstream received %v", got)
			}
		})
	}

	t.Run("well-framed pipeline is served", func(t *testing.T) {
		gets, want := pipelinedGETs("good", 20)
		statuses, closeSaid, _ := fp.exchange(t, gets+"GET /good-last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !slices.Equal(statuses, slices.Repeat([]int{200}, 21)) || !closeSaid {
			t.Fatalf("statuses %v (close %v), want 21 × 200", statuses, closeSaid)
		}
		if got := fp.upstreamSaw("/good"); !slices.Equal(got, append(want, "GET /good-last")) {
			t.Errorf("the upstream received %v", clipList(got))
		}
	})
}

// clipList shortens a long list for a failure message.
func clipList(s []string) []string {
	if len(s) > 6 {
		return append(slices.Clip(s[:3]), "…", s[len(s)-2], s[len(s)-1])
	}
	return s
}
