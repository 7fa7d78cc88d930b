package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves a Proxy on a listener: HTTP/1.1 with the wire view (header
// order, strict framing), HTTP/2 (ALPN over TLS, or cleartext with prior
// knowledge), and optional TLS termination with ClientHello fingerprints.
type Server struct {
	p   *Proxy
	cfg Config
	tls *tls.Config // nil: cleartext
	log *slog.Logger
}

// NewServer returns a server for p; tlsConf comes from cfg.TLS.Load and is
// nil for cleartext.
func NewServer(p *Proxy, cfg Config, tlsConf *tls.Config, log *slog.Logger) *Server {
	return &Server{p: p, cfg: cfg, tls: tlsConf, log: log}
}

// connInfo is what a connection knows of its client, for every request on
// it.
type connInfo struct {
	wire *wireConn            // HTTP/1.x, and h2c after its preface
	tls  *tls.ConnectionState // TLS terminated here
	ja4  string
	ja3  string
}

type connInfoKey struct{}

// helloConn is the TCP connection under TLS; the ClientHello callback
// leaves the fingerprints on it.
type helloConn struct {
	net.Conn
	ja4, ja3 string
}

// Serve serves until ctx ends, then shuts down: it stops accepting, lets
// in-flight requests finish (up to 15 s), closes idle connections and
// returns. ln is closed when Serve returns.
//
// With the native engine (Config.Engine) HTTP/1.x connections, cleartext
// or TLS with ALPN http/1.1, run on apiguard's own loop (h1conn.go);
// net/http's server gets HTTP/2 (ALPN h2, and h2c connections the loop
// hands over after their preface). With net/http, it serves everything.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler: framedHandler{s},
		// "OPTIONS *" reaches framedHandler too, so that every HTTP/1.x
		// request is paired with its head.
		DisableGeneralOptionsHandler: true,
		ConnState: func(c net.Conn, st http.ConnState) {
			if w, ok := c.(*wireConn); ok && st == http.StateHijacked {
				w.hijacked()
			}
		},
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ConnContext:       connContext,
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	if s.cfg.HTTP2 {
		protos.SetHTTP2(s.tls != nil)
		protos.SetUnencryptedHTTP2(s.tls == nil)
	}
	srv.Protocols = &protos
	// net/http's head limit plus its slack: heads longer than this are
	// refused by net/http before a handler runs, and by the wire view.
	maxHead := s.cfg.MaxHeaderBytes + 4096
	h2c := s.cfg.HTTP2 && s.tls == nil
	native := s.cfg.Engine != EngineNetHTTP

	var (
		wg   sync.WaitGroup
		errc = make(chan error, 1)
		in   net.Listener
		h1   *h1Server
	)
	if s.tls != nil {
		// net/http adjusts its TLSConfig for HTTP/2: give it its own copy;
		// acceptTLS handshakes with another.
		srv.TLSConfig = s.tls.Clone()
	}
	switch {
	case native:
		hl := newHandoffListener(ln.Addr())
		in = hl
		h1 = newH1Server(s, func(c net.Conn) bool { return hl.handoff(ctx, c) })
		if s.tls == nil {
			wg.Go(func() { s.acceptNative(ctx, ln, hl, h1, maxHead, h2c, &wg) })
		} else {
			wg.Go(func() { s.acceptTLS(ctx, ln, hl, h1, maxHead, &wg) })
		}
	case s.tls == nil:
		in = wireListener{Listener: ln, maxHead: maxHead, h2c: h2c}
	default:
		hl := newHandoffListener(ln.Addr())
		in = hl
		wg.Go(func() { s.acceptTLS(ctx, ln, hl, nil, maxHead, &wg) })
	}
	wg.Go(func() {
		if err := srv.Serve(in); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serving proxy: %w", err)
		}
	})
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if h1 != nil {
		ln.Close() // stop accepting before the loop's connections are told
		h1.shutdown(shutCtx)
	}
	if serr := srv.Shutdown(shutCtx); serr != nil && err == nil {
		err = fmt.Errorf("shutting down proxy: %w", serr)
	}
	ln.Close()
	wg.Wait()
	if s.p.up != nil {
		s.p.up.close()
	}
	return err
}

// acceptNative accepts cleartext connections for the native engine, each
// served by its own goroutine (owned by wg). It returns when ln closes;
// then it closes hl, net/http's listener for the connections the loop
// hands over.
func (s *Server) acceptNative(ctx context.Context, ln net.Listener, hl *handoffListener, h1 *h1Server, maxHead int, h2c bool, wg *sync.WaitGroup) {
	defer hl.Close()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return // closed
		}
		delay = 0
		wg.Go(func() { h1.serveConn(ctx, newWireConn(c, maxHead, h2c)) })
	}
}

func connContext(ctx context.Context, c net.Conn) context.Context {
	switch c := c.(type) {
	case *wireConn:
		return context.WithValue(ctx, connInfoKey{}, &c.info)
	case *bufferedConn:
		return context.WithValue(ctx, connInfoKey{}, &c.info)
	case *tls.Conn:
		if hc, ok := c.NetConn().(*helloConn); ok {
			return context.WithValue(ctx, connInfoKey{}, &connInfo{ja4: hc.ja4, ja3: hc.ja3})
		}
	}
	return ctx
}

// framedHandler is the handler net/http calls for every request.
type framedHandler struct{ s *Server }

func (h framedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	var wire *wireConn
	if info != nil {
		wire = info.wire
	}
	h.s.serveH1(w, r, wire)
}

// serveH1 serves one request on either engine. It pairs each HTTP/1.x
// request with the head the wire view framed for it (wireConn.begin)
// before the proxy runs, so a request parsed where the view saw none is
// refused, and it answers "OPTIONS *" as net/http's own handler does.
// wire is nil for HTTP/2 without a wire view.
func (s *Server) serveH1(w http.ResponseWriter, r *http.Request, wire *wireConn) {
	clean := true
	if wire != nil {
		var framed bool
		if framed, clean = wire.begin(r.Method, r.RequestURI); framed {
			defer wire.end()
		}
	}
	if clean && r.Method == http.MethodOptions && r.RequestURI == "*" {
		if wire != nil {
			wire.next() // the proxy does not see this request
		}
		w.Header().Set("Content-Length", "0")
		if r.ContentLength != 0 {
			// At most 4 KiB of body is read; more closes the connection.
			_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 4<<10))
		}
		return
	}
	s.p.ServeHTTP(w, r)
}

// wireListener wraps each accepted connection in a wireConn.
type wireListener struct {
	net.Listener
	maxHead int
	h2c     bool
}

func (l wireListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newWireConn(c, l.maxHead, l.h2c), nil
}

// acceptTLS accepts TCP connections, runs each handshake in its own
// goroutine (owned by wg) and hands the result to hl: HTTP/2 connections as
// *tls.Conn for net/http's HTTP/2 server, HTTP/1.x wrapped in a wireConn,
// which h1 serves on the same goroutine when it is not nil (the native
// engine).
func (s *Server) acceptTLS(ctx context.Context, ln net.Listener, hl *handoffListener, h1 *h1Server, maxHead int, wg *sync.WaitGroup) {
	defer hl.Close()
	conf := s.tls.Clone()
	conf.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if hc, ok := h.Conn.(*helloConn); ok {
			hc.ja4 = JA4(h)
			_, hc.ja3 = JA3(h)
		}
		return nil, nil
	}
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return // closed
		}
		delay = 0
		wg.Go(func() {
			hc := &helloConn{Conn: c}
			tc := tls.Server(hc, conf)
			hsCtx, cancel := context.WithTimeout(ctx, s.cfg.ReadHeaderTimeout)
			err := tc.HandshakeContext(hsCtx)
			cancel()
			if err != nil {
				s.p.logRare("tls handshake failed", "err", err, "remote", c.RemoteAddr().String())
				c.Close()
				return
			}
			st := tc.ConnectionState()
			var out net.Conn = tc
			if st.NegotiatedProtocol != "h2" {
				w := newWireConn(tc, maxHead, false)
				w.info.tls, w.info.ja4, w.info.ja3 = &st, hc.ja4, hc.ja3
				if h1 != nil {
					h1.serveConn(ctx, w)
					return
				}
				out = w
			}
			if !hl.handoff(ctx, out) {
				out.Close()
			}
		})
	}
}

// handoffListener is a net.Listener fed by acceptTLS.
type handoffListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *handoffListener) handoff(ctx context.Context, c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
	case <-ctx.Done():
	}
	return false
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
