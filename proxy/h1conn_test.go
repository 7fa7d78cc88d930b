package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// nativeServer is a Server on the native engine in front of upstream.
type nativeServer struct {
	addr   string
	events *collector
	stop   func() error // shuts down and returns Serve's error
}

func serveNative(t *testing.T, upstream string, mutate func(*Config)) *nativeServer {
	t.Helper()
	return serveNativeChecks(t, upstream, mutate, nil)
}

// serveNativeChecks is serveNative with the checks given (nil: the
// default chain).
func serveNativeChecks(t *testing.T, upstream string, mutate func(*Config), checks []Check) *nativeServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Engine = EngineNative
	cfg.Upstream = upstream
	if mutate != nil {
		mutate(&cfg)
	}
	ns := &nativeServer{events: &collector{}}
	p, err := New(cfg, checks, ns.events, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ns.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(p, cfg, nil, slog.New(slog.DiscardHandler)).Serve(ctx, ln) }()
	var once sync.Once
	var serr error
	ns.stop = func() error {
		once.Do(func() { cancel(); serr = <-done })
		return serr
	}
	t.Cleanup(func() {
		if err := ns.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ns
}

func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func readBody(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

func TestNativePipelining(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	defer up.Close()
	ns := serveNative(t, up.URL, nil)
	c, br := dialRaw(t, ns.addr)
	raw := "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/a", "/b", "/c"} {
		resp, body := readBody(t, br, "GET")
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("response %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
}

func TestNativeUpstreamKeepAlive(t *testing.T) {
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	ns := serveNative(t, up.URL, nil)
	client := &http.Client{Timeout: 5 * time.Second}
	for range 20 {
		resp, err := client.Get("http://" + ns.addr + "/k")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential requests opened %d upstream connections, want 1", n)
	}
	// The upstream closes its idle connections: the next request is sent
	// again on a fresh one, not answered 502.
	up.CloseClientConnections()
	resp, err := client.Get("http://" + ns.addr + "/k")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the upstream closed its connections: status %d", resp.StatusCode)
	}
}

// rawUpstream answers each connection with answer.
func rawUpstream(t *testing.T, answer func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				answer(c, bufio.NewReader(c))
			})
		}
	})
	return "http://" + ln.Addr().String()
}

func TestNativeUpstreamClosesMidResponse(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
	})
	ns := serveNative(t, up, nil)
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		// The head never went out: acceptable, the client saw no response.
		return
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a response cut short by the upstream reached the client complete")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the client connection stayed open after a truncated response")
	}
}

func TestNativeUpstreamErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer string
		status int
	}{
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 502},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 3\n\nabc", 502},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 502},
		{"no response", "", 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, tc.answer)
			})
			ns := serveNative(t, up, nil)
			_, br := func() (net.Conn, *bufio.Reader) {
				c, br := dialRaw(t, ns.addr)
				_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
				return c, br
			}()
			resp, _ := readBody(t, br, "GET")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if ev := ns.events.Last(t); ev.Status != uint32(tc.status) || !strings.HasPrefix(ev.Reason, "upstream: ") {
				t.Errorf("event status %d reason %q", ev.Status, ev.Reason)
			}
		})
	}
}

func TestNativeUpstreamTimeout(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = http.ReadRequest(br)
		_, _ = br.ReadByte() // never answers
	})
	ns := serveNative(t, up, func(c *Config) { c.UpstreamTimeout = 100 * time.Millisecond })
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := readBody(t, br, "GET"); resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
}

func TestNativeChunkedBothWays(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" {
			http.Error(w, "want a chunked body", http.StatusBadRequest)
			return
		}
		for _, part := range []string{string(b), "|", strings.Repeat("z", 10000)} {
			_, _ = io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
	}))
	defer up.Close()
	ns := serveNative(t, up.URL, nil)
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n")
	resp, body := readBody(t, br, "POST")
	if resp.StatusCode != 200 || body != "abcde|"+strings.Repeat("z", 10000) {
		t.Fatalf("status %d body %.40q", resp.StatusCode, body)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("response framing %v, want chunked", resp.TransferEncoding)
	}
	if ev := ns.events.Last(t); ev.RequestBytes != 5 {
		t.Errorf("event request bytes %d, want 5", ev.RequestBytes)
	}
}

func TestNativeExpectContinue(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}))
	defer up.Close()
	ns := serveNative(t, up.URL, nil)
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "PUT /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q, %v; want 100 Continue", line, err)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("after 100 Continue: %q", l)
	}
	_, _ = io.WriteString(c, "hello")
	if resp, body := readBody(t, br, "PUT"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	// Other expectations are refused, as net/http refuses them.
	_, _ = io.WriteString(c, "PUT /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: magic\r\n\r\nhello")
	if resp, _ := readBody(t, br, "PUT"); resp.StatusCode != http.StatusExpectationFailed {
		t.Fatalf("status %d, want 417", resp.StatusCode)
	}
}

func TestNativeHeadAndNoBodyStatuses(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "16")
			_, _ = io.WriteString(w, "upstream says hi")
		}
	}))
	defer up.Close()
	ns := serveNative(t, up.URL, nil)
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, body := readBody(t, br, "HEAD")
	if resp.StatusCode != 200 || resp.ContentLength != 16 || body != "" {
		t.Fatalf("HEAD: %d, length %d, body %q", resp.StatusCode, resp.ContentLength, body)
	}
	for _, want := range []int{204, 304} {
		if resp, body := readBody(t, br, "GET"); resp.StatusCode != want || body != "" {
			t.Fatalf("status %d body %q, want %d and none", resp.StatusCode, body, want)
		} else if len(resp.Header.Get("X-Request-Id")) != 26 {
			// The head goes out after the handler returned: the fields
			// are those WriteHeader saw, not what the exchange released.
			t.Errorf("%d: X-Request-Id %q", want, resp.Header.Get("X-Request-Id"))
		}
	}
	if resp, body := readBody(t, br, "GET"); resp.StatusCode != 200 || body != "upstream says hi" {
		t.Fatalf("GET after HEAD: %d %q", resp.StatusCode, body)
	}
}

func TestNativeInterimResponses(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "final")
	}))
	defer up.Close()
	ns := serveNative(t, up.URL, nil)
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "GET /hints HTTP/1.1\r\nHost: a\r\n\r\n")
	early, err := http.ReadResponse(br, nil)
	if err != nil || early.StatusCode != http.StatusEarlyHints || early.Header.Get("Link") == "" {
		t.Fatalf("first response %v, %v; want 103 with Link", early, err)
	}
	if resp, body := readBody(t, br, "GET"); resp.StatusCode != 200 || body != "final" || resp.Header.Get("Link") != "" {
		t.Fatalf("final: %d %q Link %q", resp.StatusCode, body, resp.Header.Get("Link"))
	}
}

func TestNativeHopByHopAndForwarding(t *testing.T) {
	seen := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		seen <- h
		w.Header().Set("Connection", "X-Up-Hop")
		w.Header().Set("X-Up-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	ns := serveNative(t, up.URL, nil)
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "GET /f?q=1 HTTP/1.1\r\nHost: api.example\r\nConnection: X-Hop, keep-alive\r\nX-Hop: secret\r\n"+
		"Keep-Alive: 10\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: evil\r\nX-Other: kept\r\nProxy-Authorization: x\r\n\r\n")
	resp, _ := readBody(t, br, "GET")
	h := <-seen
	for _, k := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Connection"} {
		if v := h.Get(k); v != "" {
			t.Errorf("upstream saw hop-by-hop %s: %q", k, v)
		}
	}
	if h.Get("X-Other") != "kept" || h.Get("Host") != "api.example" || h.Get("X-Forwarded-Host") != "api.example" ||
		h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Request-Id") == "" {
		t.Errorf("upstream headers %v", h)
	}
	if resp.Header.Get("X-Up-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("client saw the upstream's hop-by-hop fields: %v", resp.Header)
	}
}

func TestNativeOversizedHead(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	for _, e := range engines {
		t.Run(strings.ReplaceAll(e, "/", "-"), func(t *testing.T) {
			ns := serveNative(t, up.URL, func(c *Config) { c.Engine, c.MaxHeaderBytes = e, 1024 })
			c, br := dialRaw(t, ns.addr)
			_, _ = io.WriteString(c, "GET /big HTTP/1.1\r\nHost: a\r\n"+strings.Repeat("X-Pad: "+strings.Repeat("p", 90)+"\r\n", 80)+"\r\n")
			resp, _ := readBody(t, br, "GET")
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d, want 431", resp.StatusCode)
			}
			if ev := ns.events.Last(t); ev.Check != FramingName || ev.Reason != reasonHeadTooLong {
				t.Errorf("event check %q reason %q", ev.Check, ev.Reason)
			}
		})
	}
}

func TestNativeSlowHeadTimesOut(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	ns := serveNative(t, up.URL, func(c *Config) { c.ReadHeaderTimeout = 200 * time.Millisecond })
	c, br := dialRaw(t, ns.addr)
	start := time.Now()
	// A byte at a time, never ending the head.
	go func() {
		for i := 0; i < 40; i++ {
			if _, err := io.WriteString(c, "G"[:1]); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	_, _ = io.Copy(io.Discard, br)
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("a head never finished held the connection %v, want about read_header_timeout", took)
	}
}

func TestNativeShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	defer up.Close()
	ns := serveNative(t, up.URL, nil)
	idle, idleBR := dialRaw(t, ns.addr)
	_, _ = io.WriteString(idle, "GET /idle HTTP/1.1\r\nHost: a\r\n\r\n")
	readBody(t, idleBR, "GET")
	busy, busyBR := dialRaw(t, ns.addr)
	_, _ = io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered

	stopped := make(chan error, 1)
	go func() { stopped <- ns.stop() }()
	// The idle connection is closed at once.
	if _, err := idleBR.ReadByte(); err == nil {
		t.Error("an idle connection stayed open during shutdown")
	}
	select {
	case <-stopped:
		t.Fatal("Serve returned with a request in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	resp, body := readBody(t, busyBR, "GET")
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Errorf("in-flight request: %d %q close %v; want 200 done, closing", resp.StatusCode, body, resp.Close)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", ns.addr); err == nil {
		t.Error("the listener accepts after shutdown")
	}
}

func TestNativeHandlerPanicClosesConnection(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	ns := serveNativeChecks(t, up.URL, nil, []Check{panicCheck{}})
	c, br := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c, "GET /boom HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the connection answered after its handler panicked")
	}
	// The server goes on.
	c2, br2 := dialRaw(t, ns.addr)
	_, _ = io.WriteString(c2, "GET /boom HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if _, err := br2.ReadByte(); err == nil {
		t.Fatal("the second connection answered")
	}
}

type panicCheck struct{}

func (panicCheck) Name() string              { return "panic" }
func (panicCheck) Check(x *Exchange) *Denial { panic("check failed") }

// FuzzH1Head reads request heads as the native engine does, through the
// wire view in reads of step bytes. A head the engine parses and the view
// pairs as clean must be one net/http's parser reads the same way
// (method, target, URL, host, length, header fields): the engine adds no
// lenient reading of its own.
func FuzzH1Head(f *testing.F) {
	f.Add([]byte("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Api-Key: k\r\n\r\n"), uint8(7))
	f.Add([]byte("POST /p HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), uint8(2))
	f.Add([]byte("OPTIONS * HTTP/1.0\r\nContent-Length: 2\r\n\r\nab"), uint8(200))
	f.Add([]byte("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"), uint8(3))
	f.Add([]byte("GET /%7e/%zz HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, raw []byte, step uint8) {
		w := newWireConn(&pipeConn{data: raw, step: int(step) + 1}, 8<<10, false)
		c := &h1conn{wire: w, br: bufio.NewReaderSize(w, 4<<10), req: &http.Request{}, hdr: http.Header{}, maxHead: 8 << 10}
		c.w.c = c
		if err := c.readHead(); err != nil {
			return
		}
		r, err := c.parseHead()
		if err != nil {
			return
		}
		if framed, clean := w.begin(r.Method, r.RequestURI); !framed || !clean {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(raw))))
		if err != nil {
			t.Fatalf("the engine read %s %s; net/http refuses the head: %v", r.Method, r.RequestURI, err)
		}
		delete(want.Header, "Host")
		got := r.Header.Clone()
		if want.Method != r.Method || want.RequestURI != r.RequestURI || want.URL.String() != r.URL.String() ||
			want.Host != r.Host || want.ContentLength != r.ContentLength || want.Close != r.Close {
			t.Fatalf("engine %s %s %q host %q length %d close %v; net/http %s %s %q host %q length %d close %v",
				r.Method, r.RequestURI, r.URL, r.Host, r.ContentLength, r.Close,
				want.Method, want.RequestURI, want.URL, want.Host, want.ContentLength, want.Close)
		}
		if len(got) != len(want.Header) {
			t.Fatalf("engine fields %q; net/http %q", got, want.Header)
		}
		for k, vs := range want.Header {
			if !slices.Equal(got[k], vs) {
				t.Fatalf("field %s: engine %q, net/http %q", k, got[k], vs)
			}
		}
	})
}

func TestEngineConfig(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.Engine != EngineNative {
		t.Errorf("default engine %q, want %q", cfg.Engine, EngineNative)
	}
	cfg.Engine = "fasthttp"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "proxy.engine") {
		t.Errorf("engine fasthttp: %v, want an error naming proxy.engine", err)
	}
}

// TestNativeLargeBodies: a body larger than one write goes to the upstream
// from its own goroutine while the response is read; an upstream that
// answers without reading it does not hang the exchange.
func TestNativeLargeBodies(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/early" {
			w.Header().Set("Connection", "close")
			http.Error(w, "too big", http.StatusRequestEntityTooLarge)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, strconv.FormatInt(n, 10))
	}))
	defer up.Close()
	ns := serveNative(t, up.URL, nil)
	body := strings.Repeat("b", 1<<20)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post("http://"+ns.addr+"/echo", "application/octet-stream", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != strconv.Itoa(len(body)) {
		t.Fatalf("echo: %d %q", resp.StatusCode, got)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := net.Dial("tcp", ns.addr)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		// The body is sent in full while the response may already come.
		go func() {
			_, _ = io.WriteString(c, "POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: "+strconv.Itoa(8<<20)+"\r\n\r\n")
			_, _ = io.WriteString(c, strings.Repeat("e", 8<<20))
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("early answer: %v", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("early answer: status %d", resp.StatusCode)
		}
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("an upstream answering before the body ended hung the exchange")
	}
}

// TestNativeSlowUploadWithinUpstreamTimeout: upstream_timeout bounds each
// step of the upstream leg, not a whole upload that keeps making progress.
func TestNativeSlowUploadWithinUpstreamTimeout(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, strconv.FormatInt(n, 10))
	}))
	defer up.Close()
	ns := serveNative(t, up.URL, func(c *Config) { c.UpstreamTimeout = 200 * time.Millisecond })
	c, br := dialRaw(t, ns.addr)
	const parts, size = 8, 8 << 10
	_, _ = io.WriteString(c, "PUT /slow HTTP/1.1\r\nHost: a\r\nContent-Length: "+strconv.Itoa(parts*size)+"\r\n\r\n")
	for range parts {
		time.Sleep(100 * time.Millisecond)
		if _, err := io.WriteString(c, strings.Repeat("s", size)); err != nil {
			t.Fatal(err)
		}
	}
	if resp, body := readBody(t, br, "PUT"); resp.StatusCode != 200 || body != strconv.Itoa(parts*size) {
		t.Fatalf("status %d body %q; want 200 and the whole body", resp.StatusCode, body)
	}
}

func TestNativeForwardsResponseTrailers(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc")
	}))
	defer up.Close()
	ns := serveNative(t, up.URL, nil)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ns.addr + "/t")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "body" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Fatalf("body %q, trailer %v; want the upstream's X-Checksum", body, resp.Trailer)
	}
}
