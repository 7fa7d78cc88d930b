package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// served is a Proxy behind a Server on a loopback port.
type served struct {
	addr     string
	events   *collector
	upstream chan *http.Request

	mu   sync.Mutex
	seen []string // every request's "METHOD /path", in the order the upstream got them
}

// upstreamSaw returns what the upstream received whose path starts with
// prefix.
func (s *served) upstreamSaw(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.seen {
		if _, path, _ := strings.Cut(r, " "); strings.HasPrefix(path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// engines are the HTTP/1.x engines the server-level tests run on.
var engines = []string{EngineNative, EngineNetHTTP}

// forEngines runs test on each engine, as a subtest named for it.
func forEngines(t *testing.T, test func(t *testing.T, engine string)) {
	for _, e := range engines {
		t.Run(strings.ReplaceAll(e, "/", "-"), func(t *testing.T) { test(t, e) })
	}
}

func serveProxy(t *testing.T, mutate func(*Config), checks ...Check) *served {
	t.Helper()
	return serveEngine(t, "", mutate, checks...)
}

// serveEngine is serveProxy on engine ("" for the default).
func serveEngine(t *testing.T, engine string, mutate func(*Config), checks ...Check) *served {
	t.Helper()
	s := &served{events: &collector{}, upstream: make(chan *http.Request, 16)}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		select {
		case s.upstream <- r.Clone(context.Background()):
		default:
		}
		_, _ = w.Write([]byte("upstream says hi"))
	}))
	t.Cleanup(up.Close)
	cfg := DefaultConfig()
	cfg.Upstream = up.URL
	if engine != "" {
		cfg.Engine = engine
	}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := New(cfg, checks, s.events, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cfg.TLS.Load(cfg.HTTP2)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := NewServer(p, cfg, tc, slog.New(slog.DiscardHandler)).Serve(ctx, ln); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return s
}

func (s *served) lastUpstream(t *testing.T) *http.Request {
	t.Helper()
	select {
	case r := <-s.upstream:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream saw no request")
		return nil
	}
}

func tlsClient(pki *testPKI, h2 bool, certs ...tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: pki.pool}
	if len(certs) > 0 {
		// Sent whatever CAs the server names, as an attacker would.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	tr := &http.Transport{TLSClientConfig: tc}
	var p http.Protocols
	p.SetHTTP1(!h2)
	p.SetHTTP2(h2)
	tr.Protocols = &p
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.CloseIdleConnections()
	return resp
}

func TestServerTLSFingerprintsAndHTTP2(t *testing.T) {
	forEngines(t, testServerTLSFingerprintsAndHTTP2)
}

func testServerTLSFingerprintsAndHTTP2(t *testing.T, engine string) {
	pki := newTestPKI(t)
	s := serveEngine(t, engine, func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = pki.certFile, pki.keyFile })
	url := "https://" + s.addr + "/orders/1"

	resp := get(t, tlsClient(pki, false), url)
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
		t.Fatalf("HTTP/1.1 over TLS: %d %s", resp.StatusCode, resp.Proto)
	}
	if got := s.lastUpstream(t).Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q, want https", got)
	}
	h1 := s.events.Last(t)
	// Go's client offers TLS 1.3, no SNI for an IP address, and no ALPN
	// when it speaks HTTP/1.1 only.
	if !strings.HasPrefix(h1.TlsFingerprint, "t13i") || !strings.Contains(h1.TlsFingerprint, "00_") {
		t.Errorf("JA4 = %q, want t13i…00_…", h1.TlsFingerprint)
	}
	if len(h1.TlsJa3) != 32 || !strings.HasPrefix(h1.HeaderFingerprint, "h1:") {
		t.Errorf("JA3 = %q, header fingerprint = %q", h1.TlsJa3, h1.HeaderFingerprint)
	}

	resp = get(t, tlsClient(pki, true), url)
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Fatalf("HTTP/2 over TLS: %d %s", resp.StatusCode, resp.Proto)
	}
	s.lastUpstream(t)
	h2 := s.events.Last(t)
	if !strings.Contains(h2.TlsFingerprint, "h2_") || !strings.HasPrefix(h2.HeaderFingerprint, "hs:") {
		t.Errorf("HTTP/2: JA4 %q, header fingerprint %q; want ALPN h2 and a header-set fingerprint", h2.TlsFingerprint, h2.HeaderFingerprint)
	}
	if h2.TlsJa3 == h1.TlsJa3 {
		t.Error("clients offering different ALPN gave the same JA3")
	}
}

func TestServerClientCertificates(t *testing.T) { forEngines(t, testServerClientCertificates) }

func testServerClientCertificates(t *testing.T, engine string) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		auth      string
		certs     []tls.Certificate
		handshake bool
		subject   string
	}{
		{"optional", nil, true, ""},
		{"optional", []tls.Certificate{pki.client}, true, "cert:billing-service"},
		{"optional", []tls.Certificate{pki.stranger}, false, ""},
		{"require", nil, false, ""},
		{"require", []tls.Certificate{pki.client}, true, "cert:billing-service"},
	} {
		t.Run(tc.auth+"/"+tc.subject, func(t *testing.T) {
			s := serveEngine(t, engine, func(c *Config) {
				c.TLS.CertFile, c.TLS.KeyFile, c.TLS.ClientCAFile, c.TLS.ClientAuth = pki.certFile, pki.keyFile, pki.caFile, tc.auth
			})
			resp, err := tlsClient(pki, false, tc.certs...).Get("https://" + s.addr + "/x")
			if !tc.handshake {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request succeeded with status %d, want a failed handshake", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if ev := s.events.Last(t); ev.Subject != tc.subject {
				t.Errorf("subject %q, want %q", ev.Subject, tc.subject)
			}
		})
	}
}

func TestServerCleartextHTTP2(t *testing.T) { forEngines(t, testServerCleartextHTTP2) }

func testServerCleartextHTTP2(t *testing.T, engine string) {
	s := serveEngine(t, engine, nil)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 5 * time.Second}
	resp := get(t, c, "http://"+s.addr+"/a")
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Fatalf("h2c: %d %s", resp.StatusCode, resp.Proto)
	}
	s.lastUpstream(t)
	if ev := s.events.Last(t); !strings.HasPrefix(ev.HeaderFingerprint, "hs:") || ev.TlsFingerprint != "" {
		t.Errorf("h2c event: header fingerprint %q, TLS fingerprint %q", ev.HeaderFingerprint, ev.TlsFingerprint)
	}
	// HTTP/1.1 on the same port.
	resp = get(t, &http.Client{Timeout: 5 * time.Second}, "http://"+s.addr+"/a")
	if resp.Proto != "HTTP/1.1" {
		t.Fatalf("HTTP/1.1 on the h2c port: %s", resp.Proto)
	}
	s.lastUpstream(t)
	if ev := s.events.Last(t); !strings.HasPrefix(ev.HeaderFingerprint, "h1:") {
		t.Errorf("HTTP/1.1 event header fingerprint %q", ev.HeaderFingerprint)
	}
}

// rawExchange writes raw on a fresh connection and reads the responses.
func rawExchange(t *testing.T, addr, raw string, responses int) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for range responses {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading response %d: %v", len(out)+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, resp)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after %d responses the connection is open (%v), want it closed", responses, err)
	}
	return out
}

func TestServerRefusesContentLengthWithTransferEncoding(t *testing.T) {
	forEngines(t, testServerRefusesContentLengthWithTransferEncoding)
}

func testServerRefusesContentLengthWithTransferEncoding(t *testing.T, engine string) {
	s := serveEngine(t, engine, nil)
	// A good request, then an ambiguous one, then one that must never be
	// read: the connection closes after the 400.
	raw := "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
		"GET /smuggled HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	resps := rawExchange(t, s.addr, raw, 2)
	if resps[0].StatusCode != 200 || resps[1].StatusCode != 400 {
		t.Fatalf("statuses %d, %d; want 200, 400", resps[0].StatusCode, resps[1].StatusCode)
	}
	if r := s.lastUpstream(t); r.URL.Path != "/ok" {
		t.Fatalf("upstream saw %s", r.URL.Path)
	}
	select {
	case r := <-s.upstream:
		t.Fatalf("upstream saw %s after the ambiguous request", r.URL.Path)
	case <-time.After(100 * time.Millisecond):
	}
	ev := s.events.Last(t)
	if ev.Check != FramingName || ev.Decision != event.Decision_DECISION_BLOCK || ev.Status != 400 ||
		ev.Reason != "Content-Length with Transfer-Encoding" {
		t.Errorf("event: check %q decision %v status %d reason %q", ev.Check, ev.Decision, ev.Status, ev.Reason)
	}
}

// BenchmarkServerHTTP1 is one keep-alive HTTP/1.1 request through the
// Server (wire view, handler, proxy, loopback upstream) and its response,
// on one connection. Allocations count the client and the upstream too.
func BenchmarkServerHTTP1(b *testing.B) {
	for _, e := range engines {
		b.Run(strings.ReplaceAll(e, "/", "-"), func(b *testing.B) { benchServerHTTP1(b, e) })
	}
}

func benchServerHTTP1(b *testing.B, engine string) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id":12345,"name":"widget"}`)
	}))
	defer up.Close()
	cfg := DefaultConfig()
	cfg.Upstream = up.URL
	cfg.Engine = engine
	p, err := New(cfg, nil, discard{}, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = NewServer(p, cfg, nil, slog.New(slog.DiscardHandler)).Serve(ctx, ln) })
	defer func() { cancel(); wg.Wait() }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte(benchHead)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// exchangeUntilClosed writes raw in one write on a new connection, without
// closing its side, and reads responses until the server closes the
// connection. It returns the statuses, whether the last response said
// Connection: close, and how long the last one took to come.
func exchangeUntilClosed(t *testing.T, addr, raw string) (statuses []int, closeSaid bool, took time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	sent := time.Now()
	werr := make(chan error, 1)
	go func() { // a deep pipeline's answers are read while it is written
		_, err := c.Write([]byte(raw))
		werr <- err
	}()
	br := bufio.NewReader(c)
	for {
		if _, err := br.Peek(1); err != nil {
			if err != io.EOF {
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
		closeSaid, took = resp.Close, time.Since(sent)
	}
	<-werr // a write cut short by the close is expected
	return statuses, closeSaid, took
}

// TestServerRefusesAmbiguousRequestAtAnyPipelineDepth is the issue's
// smuggling bypass: a Content-Length with Transfer-Encoding after n
// pipelined requests in one write. At every depth the requests before it
// are served, it is refused with 400, the connection is closed, and the
// upstream never receives it.
func TestServerRefusesAmbiguousRequestAtAnyPipelineDepth(t *testing.T) {
	forEngines(t, testServerRefusesAmbiguousRequestAtAnyPipelineDepth)
}

func testServerRefusesAmbiguousRequestAtAnyPipelineDepth(t *testing.T, engine string) {
	s := serveEngine(t, engine, nil)
	for _, depth := range []int{0, 15, 16, 17, 100, 1000} {
		t.Run(fmt.Sprint(depth), func(t *testing.T) {
			var raw strings.Builder
			var want []string
			for i := range depth {
				fmt.Fprintf(&raw, "GET /d%d-%d HTTP/1.1\r\nHost: x\r\n\r\n", depth, i)
				want = append(want, fmt.Sprintf("GET /d%d-%d", depth, i))
			}
			fmt.Fprintf(&raw, "POST /d%d-clte HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", depth)
			statuses, closeSaid, _ := exchangeUntilClosed(t, s.addr, raw.String())
			if !slices.Equal(statuses, append(slices.Repeat([]int{200}, depth), 400)) || !closeSaid {
				t.Fatalf("%d responses, last %v (close %v); want %d × 200, then 400 with Connection: close", len(statuses), statuses[max(0, len(statuses)-2):], closeSaid, depth)
			}
			if got := s.upstreamSaw(fmt.Sprintf("/d%d-", depth)); !slices.Equal(got, want) {
				t.Errorf("upstream received %d requests, want %d; last %v", len(got), len(want), got[max(0, len(got)-2):])
			}
		})
	}
}

// TestServerRefusesMalformedHeads: framing that a strict parser refuses
// and net/http would repair (obs-fold, bare LF in the head, chunked on
// HTTP/1.0) is refused with 400 and the connection closed; a head that
// shows it is malformed before it ends is refused at once, not after
// ReadHeaderTimeout.
func TestServerRefusesMalformedHeads(t *testing.T) { forEngines(t, testServerRefusesMalformedHeads) }

func testServerRefusesMalformedHeads(t *testing.T, engine string) {
	s := serveEngine(t, engine, func(c *Config) { c.ReadHeaderTimeout = time.Minute })
	get := "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, tc := range []struct {
		name, raw string
		served    int    // requests before the refused one
		reason    string // the framing event's reason; "" when net/http refuses itself
	}{
		{"obs-fold", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n" + get, 0, "obs-fold header line"},
		{"obs-fold with a tab, pipelined", get + "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\tContent-Length: 30\r\n\r\n" + get, 1, "obs-fold header line"},
		{"bare LF in a header line", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\nX-B: 2\r\n\r\n" + get, 0, "bare LF in the head"},
		{"bare LF ending the head", get + "GET /x HTTP/1.1\r\nHost: a\r\n\n" + get, 1, "bare LF in the head"},
		{"bare LF in the request line", "GET /x HTTP/1.1\nHost: a\n\n" + get, 0, ""},
		{"CR without LF", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n" + get, 0, "CR without LF in the head"},
		{"HTTP/1.0 keep-alive with chunked", "GET /x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"GET /ok HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", 0, "Transfer-Encoding in an HTTP/1.0 request"},
		{"unfinished obs-fold", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded", 0, "obs-fold header line"},
		{"unfinished bare LF", get + "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\nX-B", 1, "bare LF in the head"},
		{"unfinished request line", "GET /x HTTP/1.1\nHo", 0, ""},
		{"NUL in an unfinished value", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: \x00", 0, "control character in a header value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.upstreamSaw("/"))
			evs := s.events.Len()
			statuses, closeSaid, took := exchangeUntilClosed(t, s.addr, tc.raw)
			if !slices.Equal(statuses, append(slices.Repeat([]int{200}, tc.served), 400)) || !closeSaid {
				t.Fatalf("statuses %v (close %v); want %d × 200, then 400 with Connection: close", statuses, closeSaid, tc.served)
			}
			if took > 3*time.Second {
				t.Errorf("the 400 took %v", took)
			}
			if got := s.upstreamSaw("/"); len(got) != before+tc.served || slices.Contains(got[before:], "GET /x") {
				t.Errorf("upstream received %v", got[before:])
			}
			if tc.reason == "" {
				return
			}
			if s.events.Len() != evs+tc.served+1 {
				t.Fatalf("%d events, want %d", s.events.Len()-evs, tc.served+1)
			}
			ev := s.events.Last(t)
			if ev.Check != FramingName || ev.Status != 400 || ev.Reason != tc.reason || ev.Path != "/x" || !strings.HasPrefix(ev.HeaderFingerprint, "h1:") {
				t.Errorf("event: check %q status %d reason %q path %q fingerprint %q", ev.Check, ev.Status, ev.Reason, ev.Path, ev.HeaderFingerprint)
			}
		})
	}
}

// TestServerOptionsStar: "OPTIONS *" is answered by the Server as net/http
// answers it, without the upstream, and the requests after it on the
// connection stay paired with their heads.
func TestServerOptionsStar(t *testing.T) { forEngines(t, testServerOptionsStar) }

func testServerOptionsStar(t *testing.T, engine string) {
	s := serveEngine(t, engine, nil)
	raw := "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET /after-options HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	statuses, _, _ := exchangeUntilClosed(t, s.addr, raw)
	if !slices.Equal(statuses, []int{200, 200}) {
		t.Fatalf("statuses %v", statuses)
	}
	if got := s.upstreamSaw("/"); !slices.Equal(got, []string{"GET /after-options"}) {
		t.Errorf("upstream received %v", got)
	}
	// Refused framing is refused for "OPTIONS *" too.
	statuses, _, _ = exchangeUntilClosed(t, s.addr, "OPTIONS * HTTP/1.1\r\nHost: a\r\nX: 1\r\n y\r\n\r\n")
	if !slices.Equal(statuses, []int{400}) {
		t.Fatalf("statuses %v", statuses)
	}
}

// TestServerUpgradePassesThrough: after a protocol upgrade the client's
// bytes are no longer HTTP, and pass to the upstream unexamined.
func TestServerUpgradePassesThrough(t *testing.T) { forEngines(t, testServerUpgradePassesThrough) }

func testServerUpgradePassesThrough(t *testing.T, engine string) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		buf := make([]byte, 64)
		n, _ := brw.Read(buf)
		_, _ = c.Write(buf[:n])
	}))
	defer up.Close()
	cfg := DefaultConfig()
	cfg.Upstream = up.URL
	cfg.Engine = engine
	p, err := New(cfg, nil, &collector{}, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = NewServer(p, cfg, nil, slog.New(slog.DiscardHandler)).Serve(ctx, ln) })
	defer func() { cancel(); wg.Wait() }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// Bytes no HTTP/1.1 head could start with.
	frame := "\x81\x05hello\n \r\x00"
	if _, err := io.WriteString(c, frame); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(frame))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != frame {
		t.Fatalf("echoed %q, %v; want %q", got, err, frame)
	}
}
