package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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
}

func serveProxy(t *testing.T, mutate func(*Config), checks ...Check) *served {
	t.Helper()
	s := &served{events: &collector{}, upstream: make(chan *http.Request, 16)}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case s.upstream <- r.Clone(context.Background()):
		default:
		}
		_, _ = w.Write([]byte("upstream says hi"))
	}))
	t.Cleanup(up.Close)
	cfg := DefaultConfig()
	cfg.Upstream = up.URL
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
	pki := newTestPKI(t)
	s := serveProxy(t, func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = pki.certFile, pki.keyFile })
	url := "https://" + s.addr + "/orders/1"

	resp := get(t, tlsClient(pki, false), url)
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
		t.Fatalf("HTTP/1.1 over TLS: %d %s", resp.StatusCode, resp.Proto)
	}
	if got := s.lastUpstream(t).Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q, want https", got)
	}
	h1 := s.events.last(t)
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
	h2 := s.events.last(t)
	if !strings.Contains(h2.TlsFingerprint, "h2_") || !strings.HasPrefix(h2.HeaderFingerprint, "hs:") {
		t.Errorf("HTTP/2: JA4 %q, header fingerprint %q; want ALPN h2 and a header-set fingerprint", h2.TlsFingerprint, h2.HeaderFingerprint)
	}
	if h2.TlsJa3 == h1.TlsJa3 {
		t.Error("clients offering different ALPN gave the same JA3")
	}
}

func TestServerClientCertificates(t *testing.T) {
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
			s := serveProxy(t, func(c *Config) {
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
			if ev := s.events.last(t); ev.Subject != tc.subject {
				t.Errorf("subject %q, want %q", ev.Subject, tc.subject)
			}
		})
	}
}

func TestServerCleartextHTTP2(t *testing.T) {
	s := serveProxy(t, nil)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 5 * time.Second}
	resp := get(t, c, "http://"+s.addr+"/a")
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Fatalf("h2c: %d %s", resp.StatusCode, resp.Proto)
	}
	s.lastUpstream(t)
	if ev := s.events.last(t); !strings.HasPrefix(ev.HeaderFingerprint, "hs:") || ev.TlsFingerprint != "" {
		t.Errorf("h2c event: header fingerprint %q, TLS fingerprint %q", ev.HeaderFingerprint, ev.TlsFingerprint)
	}
	// HTTP/1.1 on the same port.
	resp = get(t, &http.Client{Timeout: 5 * time.Second}, "http://"+s.addr+"/a")
	if resp.Proto != "HTTP/1.1" {
		t.Fatalf("HTTP/1.1 on the h2c port: %s", resp.Proto)
	}
	s.lastUpstream(t)
	if ev := s.events.last(t); !strings.HasPrefix(ev.HeaderFingerprint, "h1:") {
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
	s := serveProxy(t, nil)
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
	ev := s.events.last(t)
	if ev.Check != FramingName || ev.Decision != event.Decision_DECISION_BLOCK || ev.Status != 400 ||
		ev.Reason != "Content-Length with Transfer-Encoding" {
		t.Errorf("event: check %q decision %v status %d reason %q", ev.Check, ev.Decision, ev.Status, ev.Reason)
	}
}
