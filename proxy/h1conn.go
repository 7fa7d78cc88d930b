package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The engines Config.Engine names.
const (
	// EngineNative serves HTTP/1.x on apiguard's own connection loop
	// (h1conn.go), with net/http kept for HTTP/2 and hand-offs.
	EngineNative = "native"
	// EngineNetHTTP serves everything with net/http's server.
	EngineNetHTTP = "net/http"
)

// h1Server runs the native engine's connections and shuts them down: it
// knows each connection and whether it is between requests.
type h1Server struct {
	s       *Server
	handoff func(net.Conn) bool // to net/http (h2c); false: refused

	shutting atomic.Bool
	mu       sync.Mutex
	conns    map[*h1conn]struct{}
}

func newH1Server(s *Server, handoff func(net.Conn) bool) *h1Server {
	return &h1Server{s: s, handoff: handoff, conns: make(map[*h1conn]struct{})}
}

func (hs *h1Server) shuttingDown() bool { return hs.shutting.Load() }

// shutdown stops new requests: idle connections are closed now, busy ones
// once their response is written. It returns when all are gone, or when
// ctx ends; then it closes the rest.
func (hs *h1Server) shutdown(ctx context.Context) {
	hs.shutting.Store(true)
	hs.mu.Lock()
	for c := range hs.conns {
		c.wakeIfIdle()
	}
	hs.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		hs.mu.Lock()
		n := len(hs.conns)
		hs.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			hs.mu.Lock()
			for c := range hs.conns {
				c.wire.Conn.Close()
			}
			hs.mu.Unlock()
			return
		}
	}
}

// h1conn is one HTTP/1.x connection on the native engine. Its goroutine
// (serve) reads a head, pairs it with the framer's view, runs the proxy
// and writes the response, then the next; everything it allocates for a
// request (request, header maps, URL, body reader, writer, buffers) is
// the connection's and reused.
type h1conn struct {
	s    *h1Server
	wire *wireConn
	br   *bufio.Reader
	bw   *bufio.Writer
	ctx  context.Context // carries the connection's info (connInfoKey)
	// cancel ends ctx: the connection is done with, or its client gone.
	cancel context.CancelFunc
	// readDeadline is the read deadline the running request was given.
	readDeadline time.Time

	// The watch for the client going away (watchClient).
	watching      bool
	watchUp       net.Conn // the upstream connection it ends
	watchGone     bool     // the client went away
	watchStopping atomic.Bool
	watchWG       sync.WaitGroup

	maxHead  int
	head     []byte
	req      *http.Request
	url      url.URL
	hdr      http.Header
	body     h1body
	w        h1writer
	lastPOST bool
	canon    map[string]string // canonicalKey's names

	dateSec int64
	dateBuf []byte

	mu     sync.Mutex // guards idle against shutdown
	idle   bool
	closed bool // hijacked, or handed to net/http
}

// serveConn serves c until it closes, the client goes away or the server
// shuts down. It returns when the connection is done with (closed, or
// hijacked by an upgrade).
func (hs *h1Server) serveConn(ctx context.Context, w *wireConn) {
	c := &h1conn{s: hs, wire: w, maxHead: w.f.maxHead}
	hs.mu.Lock()
	if hs.shutting.Load() {
		hs.mu.Unlock()
		w.Conn.Close()
		return
	}
	hs.conns[c] = struct{}{}
	hs.mu.Unlock()
	defer func() {
		hs.mu.Lock()
		delete(hs.conns, c)
		hs.mu.Unlock()
		if !c.closed {
			w.Conn.Close()
		}
		c.release()
	}()
	c.br = bufReaders.Get().(*bufio.Reader)
	c.br.Reset(w)
	c.bw = bufWriters.Get().(*bufio.Writer)
	c.bw.Reset(w.Conn)
	// Requests run with the connection's context, not Serve's: a
	// shutdown lets them finish; the connection's end cancels it.
	connCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	c.cancel = cancel
	c.ctx = context.WithValue(connCtx, connInfoKey{}, &w.info)
	c.req = (&http.Request{}).WithContext(c.ctx)
	c.hdr = make(http.Header, 16)
	c.w = h1writer{c: c, header: make(http.Header, 16)}
	c.req.RemoteAddr = w.RemoteAddr().String()
	c.req.TLS = w.info.tls
	c.serve()
}

// release returns the connection's buffers to their pools, unless they
// went with the connection.
func (c *h1conn) release() {
	if c.closed {
		return
	}
	if c.br != nil {
		c.br.Reset(nil)
		bufReaders.Put(c.br)
	}
	if c.bw != nil {
		c.bw.Reset(nil)
		bufWriters.Put(c.bw)
	}
	c.br, c.bw = nil, nil
}

var (
	bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	bufWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// h2Preface is what a client with prior knowledge of HTTP/2 sends first.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func (c *h1conn) serve() {
	cfg := &c.s.s.cfg
	for first := true; ; first = false {
		if !c.waitRequest(first) {
			return
		}
		if first && c.wire.f.h2c && c.isPreface() {
			c.closed = c.s.handoff(&bufferedConn{wireConn: c.wire, br: c.br})
			return
		}
		start := time.Now()
		if cfg.ReadHeaderTimeout > 0 {
			_ = c.wire.Conn.SetReadDeadline(start.Add(cfg.ReadHeaderTimeout))
		}
		err := c.readHead()
		var r *http.Request
		if err == nil {
			r, err = c.parseHead()
		}
		if err != nil {
			var he *headError
			if errors.As(err, &he) {
				c.refuse(he)
			}
			return
		}
		c.readDeadline = time.Time{}
		if cfg.ReadTimeout > 0 {
			c.readDeadline = start.Add(cfg.ReadTimeout)
		}
		_ = c.wire.Conn.SetReadDeadline(c.readDeadline)
		if cfg.WriteTimeout > 0 {
			_ = c.wire.Conn.SetWriteDeadline(start.Add(cfg.WriteTimeout))
		}
		c.lastPOST = r.Method == http.MethodPost
		c.w.reset(r)
		if !c.handle(r) {
			return
		}
		if c.w.hijacked {
			return
		}
		c.body.closed = true
		if c.w.finish() != nil || c.w.close {
			return
		}
		c.body.closed = false
		if !c.body.drain() {
			return
		}
		c.body.closed = true
	}
}

// handle runs the request's handler. A panic in it is recovered, as
// net/http recovers it: logged (unless it is http.ErrAbortHandler) and the
// connection closed; handle then returns false.
func (c *h1conn) handle(r *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				c.s.s.p.logRare("panic serving request", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
			ok = false
		}
	}()
	c.s.s.serveH1(&c.w, r, c.wire)
	return true
}

// waitRequest waits, with the idle timeout (the head timeout for the
// first request), for the first byte of the next request. It reports
// false when the connection is to close.
func (c *h1conn) waitRequest(first bool) bool {
	cfg := &c.s.s.cfg
	if c.br.Buffered() == 0 {
		c.mu.Lock()
		if c.s.shuttingDown() {
			c.mu.Unlock()
			return false
		}
		c.idle = true
		wait := cfg.IdleTimeout
		if first || wait <= 0 {
			wait = cfg.ReadHeaderTimeout
		}
		if wait > 0 {
			_ = c.wire.Conn.SetReadDeadline(time.Now().Add(wait))
		} else {
			_ = c.wire.Conn.SetReadDeadline(time.Time{})
		}
		c.mu.Unlock()
		_, err := c.br.Peek(1)
		c.mu.Lock()
		c.idle = false
		c.mu.Unlock()
		if err != nil {
			return false
		}
	}
	return !c.s.shuttingDown()
}

// watchClient watches, while the response to a request read whole is
// awaited and copied from up, for the client going away, as net/http's
// background read does: a closed or failed connection cancels the
// connection's context and ends the exchange on up (its deadline is set
// in the past). Bytes that arrive instead (a pipelined request) stay in
// the buffer for the loop, and the watch ends. stopWatch must be called
// before the handler returns.
func (c *h1conn) watchClient(up net.Conn) {
	if c.br.Buffered() > 0 {
		return // the next request is already here
	}
	c.watchUp = up
	c.watchGone = false
	c.watchStopping.Store(false)
	c.watching = true
	c.watchWG.Add(1)
	go c.watch()
}

func (c *h1conn) watch() {
	defer c.watchWG.Done()
	// The read timeout ending the watch is no sign of the client leaving:
	// a long response (a stream) goes on.
	if _, err := c.br.Peek(1); err != nil && !c.watchStopping.Load() && !isTimeout(err) {
		c.watchGone = true
		c.cancel()
		_ = c.watchUp.SetDeadline(time.Unix(1, 0))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stopWatch ends the watch watchClient began, if one runs, leaving the
// read deadline as it was. It reports whether the client went away.
func (c *h1conn) stopWatch() (gone bool) {
	if !c.watching {
		return false
	}
	c.watching = false
	c.watchStopping.Store(true)
	_ = c.wire.Conn.SetReadDeadline(time.Unix(1, 0))
	c.watchWG.Wait()
	_ = c.wire.Conn.SetReadDeadline(c.readDeadline)
	c.watchUp = nil
	return c.watchGone
}

// h1connOf returns the native connection under w, or nil.
func h1connOf(w http.ResponseWriter) *h1conn {
	for {
		switch v := w.(type) {
		case *h1writer:
			return v.c
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return nil
		}
	}
}

// wakeIfIdle ends the wait of a connection between requests; hs.mu is
// held.
func (c *h1conn) wakeIfIdle() {
	c.mu.Lock()
	if c.idle {
		_ = c.wire.Conn.SetReadDeadline(time.Unix(1, 0))
	}
	c.mu.Unlock()
}

// isPreface reports whether the connection opens with HTTP/2's preface,
// reading no further than the bytes that still match it.
func (c *h1conn) isPreface() bool {
	for n := 1; n <= len(h2Preface); n++ {
		b, err := c.br.Peek(n)
		if err != nil || b[n-1] != h2Preface[n-1] {
			return false
		}
	}
	return true
}

// refuse answers a head refused before any handler as net/http does, and
// the connection closes.
func (c *h1conn) refuse(he *headError) {
	bw := c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(he.status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(he.status))
	bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
	bw.WriteString(strconv.Itoa(he.status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(he.status))
	if he != errMalformedHead && he != errHeadTooLong {
		bw.WriteString(": ")
		bw.WriteString(he.msg)
	}
	_ = bw.Flush()
}

// hijack hands the connection over to a handler (a protocol upgrade).
func (c *h1conn) hijack() {
	c.closed = true
	c.wire.hijacked()
	_ = c.wire.Conn.SetDeadline(time.Time{})
}

// date is the Date header's value for now, formatted once a second.
func (c *h1conn) date() []byte {
	now := time.Now()
	if sec := now.Unix(); sec != c.dateSec || c.dateBuf == nil {
		c.dateSec = sec
		c.dateBuf = now.UTC().AppendFormat(c.dateBuf[:0], http.TimeFormat)
	}
	return c.dateBuf
}

// bufferedConn is a wireConn whose first bytes wait in br: a connection
// handed to net/http after the loop has read from it.
type bufferedConn struct {
	*wireConn
	br *bufio.Reader
}

// Read reads what br holds, then the connection.
func (b *bufferedConn) Read(p []byte) (int, error) {
	if b.br != nil {
		if b.br.Buffered() > 0 {
			return b.br.Read(p)
		}
		b.br = nil
	}
	return b.wireConn.Read(p)
}

var _ io.Reader = (*bufferedConn)(nil)
