package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// upstreamPool is the native engine's HTTP/1.1 client for an http://
// upstream: keep-alive connections, the most recently used first, each
// with its own buffers and header maps. A request writes its rewritten
// head from the connection's buffer and copies its body; the response
// head is parsed as strictly as a request's (a response whose framing is
// ambiguous is a 502, never forwarded) into the connection's map.
//
// It is safe for concurrent use; a connection belongs to one request at a
// time.
type upstreamPool struct {
	host    string // the upstream URL's host, as configured
	addr    string // host:port
	timeout time.Duration
	dial    func(ctx context.Context, addr string) (net.Conn, error)
	maxIdle int
	maxAge  time.Duration // idle connections older than this are not reused

	mu   sync.Mutex
	idle []*upConn
}

// upConn is one keep-alive connection to the upstream.
type upConn struct {
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	out    http.Header // the outbound request's header, reused
	in     http.Header // the response's header, reused
	head   []byte
	rb     respBody  // the response being read
	eb     exactBody // its Content-Length reader
	used   time.Time // when it went idle
	reused bool
	peek   idlePeek // is it still open and quiet while idle
	bs     bodySend // the request body's sender, reused: one exchange at a time
}

// newUpstreamPool returns a pool for u when the native engine can forward
// to it: http://, no path or query of its own (ReverseProxy joins those).
// Otherwise it returns nil.
func newUpstreamPool(u *url.URL, timeout time.Duration) *upstreamPool {
	if !poolable(u) {
		return nil
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &upstreamPool{host: u.Host, addr: host, timeout: timeout, dial: func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}, maxIdle: 256, maxAge: 30 * time.Second}
}

func poolable(u *url.URL) bool {
	return u.Scheme == "http" && (u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.User == nil
}

// serves reports whether the pool forwards to u (the state's upstream,
// which a reload may have changed).
func (up *upstreamPool) serves(u *url.URL) bool { return u.Host == up.host && poolable(u) }

// get returns an idle connection, or dials one.
func (up *upstreamPool) get(ctx context.Context) (*upConn, error) {
	now := time.Now()
	up.mu.Lock()
	for n := len(up.idle); n > 0; n = len(up.idle) {
		c := up.idle[n-1]
		up.idle = up.idle[:n-1]
		if now.Sub(c.used) < up.maxAge {
			up.mu.Unlock()
			// A connection the upstream closed, or wrote on while it was
			// idle, is out of step: what it sent would be read as the
			// next request's response.
			if c.peek.check() {
				c.reused = true
				return c, nil
			}
			c.conn.Close()
			up.mu.Lock()
			continue
		}
		c.conn.Close()
	}
	up.mu.Unlock()
	conn, err := up.dial(ctx, up.addr)
	if err != nil {
		return nil, fmt.Errorf("dialing upstream: %w", err)
	}
	c := &upConn{conn: conn, br: bufio.NewReaderSize(conn, 4<<10), bw: bufio.NewWriterSize(conn, 4<<10),
		out: make(http.Header, 16), in: make(http.Header, 16)}
	c.peek.init(conn)
	return c, nil
}

// put keeps c for the next request, or closes it when the pool is full
// or the upstream sent more than the response (a body on a HEAD, 204 or
// 304 response, say): those bytes would be taken for the next request's
// response.
func (up *upstreamPool) put(c *upConn) {
	if c.br.Buffered() > 0 {
		c.conn.Close()
		return
	}
	c.used = time.Now()
	up.mu.Lock()
	if len(up.idle) < up.maxIdle {
		up.idle = append(up.idle, c)
		c = nil
	}
	up.mu.Unlock()
	if c != nil {
		c.conn.Close()
	}
}

// close closes the idle connections.
func (up *upstreamPool) close() {
	up.mu.Lock()
	idle := up.idle
	up.idle = nil
	up.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

// isHop reports whether k (canonical) is hop-by-hop, or named in the
// message's Connection field.
func isHop(k string, conn []string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	if len(conn) == 0 {
		return false
	}
	for _, v := range conn {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textTrim(t), k) {
				return true
			}
		}
	}
	return false
}

// errUpstreamFraming is an upstream response whose framing the proxy
// refuses to forward.
var errUpstreamFraming = errors.New("upstream response framing is ambiguous or malformed")

// forward sends r to the upstream on a pooled connection and copies the
// response to w, with rewrite's and modifyResponse's semantics: the
// client's hop-by-hop fields and X-Forwarded-* dropped, the forwarding
// fields and the injected secrets set, the response's hop-by-hop fields
// dropped and the checks' response fields set. A failure before the
// response head is answered with upstreamFailed (502, 504 on timeout).
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, x *Exchange) {
	up := p.up
	ctx := r.Context()
	start := time.Now()
	hasBody := r.Body != nil && r.Body != http.NoBody
	var (
		c   *upConn
		err error
	)
	for attempt := 0; ; attempt++ {
		c, err = up.get(ctx)
		if err != nil {
			p.upstreamFailed(w, x, err)
			return
		}
		err = p.sendAndRead(w, r, x, c, start)
		if err == nil {
			return
		}
		c.conn.Close()
		var se *sentError
		if errors.As(err, &se) {
			return // the response had begun: nothing more to say
		}
		// A reused connection the upstream closed while idle fails before
		// any response byte; a request without a body is sent again once.
		if c.reused && !hasBody && attempt == 0 && (errors.Is(err, io.EOF) || isReset(err)) {
			continue
		}
		p.upstreamFailed(w, x, err)
		return
	}
}

// maxInterim bounds the interim (1xx) responses an upstream may send
// before its final one, as net/http's transport bounds them.
const maxInterim = 5

// sentError is a failure after the response head went to the client.
type sentError struct{ err error }

func (e *sentError) Error() string { return e.err.Error() }
func (e *sentError) Unwrap() error { return e.err }

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

// sendAndRead runs one exchange on c. It returns nil when c went back to
// the pool or was closed after a complete response.
func (p *Proxy) sendAndRead(w http.ResponseWriter, r *http.Request, x *Exchange, c *upConn, start time.Time) error {
	up := p.up
	if up.timeout > 0 {
		_ = c.conn.SetDeadline(time.Now().Add(up.timeout))
	} else {
		_ = c.conn.SetDeadline(time.Time{})
	}
	chunked := p.writeHead(r, x, c)
	// The sender lives in the connection (a local would escape to the
	// heap through the deferred wait); the last exchange's has ended.
	bs := &c.bs
	bs.ch, bs.err = nil, nil
	bs.failed.Store(false)
	switch {
	case r.Body == nil || r.Body == http.NoBody:
		if err := c.bw.Flush(); err != nil {
			return fmt.Errorf("writing to upstream: %w", err)
		}
	case r.ContentLength > 0 && r.ContentLength <= pendingMax && !chunked:
		// A small body goes with the head in one write.
		if err := copyBody(c.bw, r.Body, chunked, r.ContentLength); err != nil {
			return fmt.Errorf("sending request body: %w", err)
		}
		if err := c.bw.Flush(); err != nil {
			return fmt.Errorf("writing to upstream: %w", err)
		}
	default:
		// A larger body is sent while the response is read: an upstream
		// may answer (and stop reading) before the body ends.
		if err := c.bw.Flush(); err != nil {
			return fmt.Errorf("writing to upstream: %w", err)
		}
		// The client's 100 Continue, if it waits for one, goes out now,
		// before the response can use the client connection.
		if _, err := r.Body.Read(nil); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading request body: %w", err)
		}
		_ = c.conn.SetDeadline(time.Time{})
		bs.start(c, r.Body, chunked, r.ContentLength, up.timeout)
	}
	defer bs.wait()
	hc := h1connOf(w)
	if hc != nil && bs.ch == nil {
		// The request has been read whole: a client that goes away now
		// ends the exchange rather than leave it to the upstream.
		hc.watchClient(c.conn)
		defer hc.stopWatch()
	}

	rb := &c.rb
	for interim := 0; ; interim++ {
		if err := c.readResponseHead(r.Method, rb); err != nil {
			if bs.ch != nil {
				if bs.failed.Load() {
					// Its deadline cut the wait: the failure is the
					// body's (a client's malformed or truncated body),
					// not the upstream's, and no timeout.
					return fmt.Errorf("sending request body: %w", bs.err)
				}
				// The body's writer may be stuck: unblock it.
				c.conn.Close()
			}
			return err
		}
		if rb.status >= 100 && rb.status < 200 {
			if rb.status == http.StatusSwitchingProtocols || interim == maxInterim {
				if bs.ch != nil {
					c.conn.Close() // unblocks the body's writer
				}
				return errUpstreamFraming
			}
			// An interim response goes to the client as it came.
			h := w.Header()
			for k, vs := range c.in {
				if !isHop(k, c.in["Connection"]) {
					h[k] = vs
				}
			}
			w.WriteHeader(rb.status)
			for k := range c.in {
				delete(h, k)
			}
			continue
		}
		break
	}
	x.Event.UpstreamLatencyNanos = int64(time.Since(start))
	_ = c.conn.SetDeadline(time.Time{})
	if r.Context().Err() != nil {
		// The client went while the head was read: the deadline just
		// cleared was the watch's.
		_ = c.conn.SetDeadline(time.Unix(1, 0))
	}

	h := w.Header()
	conn := c.in["Connection"]
	for k, vs := range c.in {
		if !isHop(k, conn) {
			h[k] = vs
		}
	}
	if tr := c.in["Trailer"]; rb.chunked && len(tr) > 0 {
		// Announced trailers are forwarded, as ReverseProxy does.
		h["Trailer"] = tr
	}
	p.shapeResponse(x, h)
	w.WriteHeader(rb.status)

	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	flush, _ := w.(http.Flusher)
	stream := rb.length < 0 || strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
	body := rb.reader(c)
	if cb, ok := body.(*chunkedBody); ok {
		cb.trailer, cb.x = h, x
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return &sentError{fmt.Errorf("writing response to client: %w", werr)}
			}
			if stream && flush != nil {
				flush.Flush()
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			abortResponse(w)
			return &sentError{fmt.Errorf("reading upstream response body: %w", rerr)}
		}
	}
	if bs.ch != nil {
		select {
		case err := <-bs.ch:
			bs.ch = nil
			if err != nil {
				c.conn.Close()
				return nil
			}
		default:
			// The upstream answered without reading the whole body: the
			// connection is out of step, and closing it frees the writer.
			c.conn.Close()
			return nil
		}
	}
	if rb.close || hc != nil && hc.stopWatch() {
		c.conn.Close() // or the client went: its deadline is spent
		return nil
	}
	up.put(c)
	return nil
}

// bodySend is a request body being sent from its own goroutine.
type bodySend struct {
	ch     chan error
	err    error       // why the send failed, set before failed
	failed atomic.Bool // the send failed and cut the response's wait
}

// start sends body on c from a goroutine. As with net/http's transport,
// the upstream timeout is not a bound on the whole upload: each write must
// make progress within it, and the wait for the response head starts
// when the body has been sent. A failed send wakes the response reader.
func (bs *bodySend) start(c *upConn, body io.Reader, chunked bool, length int64, timeout time.Duration) {
	ch := make(chan error, 1)
	bs.ch = ch
	go func() {
		var w io.Writer = c.bw
		if timeout > 0 {
			w = progressWriter{w: c.bw, conn: c.conn, timeout: timeout}
		}
		err := copyBody(w, body, chunked, length)
		if err == nil {
			if timeout > 0 {
				_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
			}
			err = c.bw.Flush()
		}
		switch {
		case err != nil:
			bs.err = err
			bs.failed.Store(true)
			_ = c.conn.SetReadDeadline(time.Unix(1, 0))
		case timeout > 0:
			_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
		}
		ch <- err
	}()
}

// progressWriter gives each write to the upstream its own deadline.
type progressWriter struct {
	w       io.Writer
	conn    net.Conn
	timeout time.Duration
}

func (p progressWriter) Write(b []byte) (int, error) {
	_ = p.conn.SetWriteDeadline(time.Now().Add(p.timeout))
	return p.w.Write(b)
}

// wait waits for the body's goroutine, if one runs.
func (bs *bodySend) wait() {
	if bs.ch != nil {
		<-bs.ch
		bs.ch = nil
	}
}

// abortResponse tells the native writer that the response is cut short:
// the client must see the connection end, not a complete response.
func abortResponse(w http.ResponseWriter) {
	for {
		switch v := w.(type) {
		case *h1writer:
			v.abort()
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return
		}
	}
}

// writeHead writes the outbound request head into c.bw, and reports
// whether the body goes chunked.
func (p *Proxy) writeHead(r *http.Request, x *Exchange, c *upConn) (chunked bool) {
	out := c.out
	clear(out)
	conn := r.Header["Connection"]
	for k, vs := range r.Header {
		switch k {
		case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded",
			"Content-Length", "Expect":
			continue
		}
		if isHop(k, conn) {
			continue
		}
		out[k] = vs
	}
	if te := r.Header["Te"]; hasToken(te, "trailers") {
		out["Te"] = trailersOnly
	}
	if in := x.state.chain.inject; in != nil {
		in.Apply(x.API, out)
	}
	xff := peerText(r.RemoteAddr)
	if len(x.Event.ForwardedFor) > 0 {
		xff = strings.Join(x.Event.ForwardedFor, ", ") + ", " + xff
	}
	x.setHeader(out, "X-Forwarded-For", xff)
	x.setHeader(out, "X-Forwarded-Host", r.Host)
	proto := "http"
	if x.TLS != nil {
		proto = "https"
	}
	x.setHeader(out, "X-Forwarded-Proto", proto)
	x.setHeader(out, "X-Request-Id", x.Event.Id)

	bw := c.bw
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	bw.WriteString(path)
	if q := r.URL.RawQuery; q != "" || r.URL.ForceQuery {
		bw.WriteByte('?')
		bw.WriteString(q)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	for k, vs := range out {
		if !validFieldName(k) {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case r.Body == nil || r.Body == http.NoBody:
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			bw.WriteString("Content-Length: 0\r\n")
		}
	case r.ContentLength >= 0 && len(r.TransferEncoding) == 0:
		// A body that came chunked goes chunked, whatever a check made of
		// its length, as ReverseProxy sends it.
		var b [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(b[:0], r.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		chunked = true
	}
	bw.WriteString("\r\n")
	return chunked
}

var trailersOnly = []string{"trailers"}

// errBodyLength is a request body that disagrees with the Content-Length
// sent for it (a check that replaced the body, say): the upstream would
// read the difference as the start of another request, or wait for it.
var errBodyLength = errors.New("request body length differs from its Content-Length")

// copyBody copies a request body to the upstream, chunked or as length
// bytes: a body that ends sooner or goes on is an error, with nothing
// beyond length sent.
func copyBody(w io.Writer, body io.Reader, chunked bool, length int64) error {
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	if !chunked {
		n, err := io.CopyBuffer(writerOnly{w}, io.LimitReader(body, length), buf)
		if err != nil {
			return err
		}
		if n < length {
			return fmt.Errorf("%w: %d bytes, not %d", errBodyLength, n, length)
		}
		if m, _ := body.Read(buf[:1]); m > 0 {
			return fmt.Errorf("%w: more than %d bytes", errBodyLength, length)
		}
		return nil
	}
	cw := httputil.NewChunkedWriter(w)
	if _, err := io.CopyBuffer(cw, body, buf); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\r\n") // no trailers
	return err
}

// writerOnly hides bufio.Writer's ReadFrom, which would bypass buf.
type writerOnly struct{ io.Writer }

// respBody is how a response's body is framed.
type respBody struct {
	status  int
	length  int64 // -1: chunked or until close
	chunked bool
	close   bool // the connection cannot be reused
	lr      io.LimitedReader
}

// reader returns the body's reader over c.br.
func (rb *respBody) reader(c *upConn) io.Reader {
	switch {
	case rb.chunked:
		return &chunkedBody{r: httputil.NewChunkedReader(c.br), br: c.br}
	case rb.length >= 0:
		rb.lr = io.LimitedReader{R: c.br, N: rb.length}
		c.eb.lr = &rb.lr
		return &c.eb
	default:
		return c.br // until the upstream closes
	}
}

// exactBody reads Content-Length bytes; ending early is an error.
type exactBody struct{ lr *io.LimitedReader }

func (b *exactBody) Read(p []byte) (int, error) {
	if b.lr.N == 0 {
		return 0, io.EOF
	}
	n, err := b.lr.Read(p)
	if errors.Is(err, io.EOF) && b.lr.N > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// chunkedBody decodes a chunked body and reads its trailer section into
// trailer (http.TrailerPrefix fields), leaving out hop-by-hop fields and
// any that carry an injected secret.
type chunkedBody struct {
	r       io.Reader
	br      *bufio.Reader
	trailer http.Header // nil: trailers are dropped
	x       *Exchange
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		for total := 0; ; {
			line, lerr := b.br.ReadSlice('\n')
			if lerr != nil {
				return n, io.ErrUnexpectedEOF
			}
			if total += len(line); total > maxTrailer {
				return n, errUpstreamFraming
			}
			if len(line) == 2 && line[0] == '\r' {
				return n, io.EOF
			}
			b.addTrailer(line)
		}
	}
	return n, err
}

func (b *chunkedBody) addTrailer(line []byte) {
	if b.trailer == nil {
		return
	}
	name, value, ok := strings.Cut(strings.TrimRight(string(line), "\r\n"), ":")
	if !ok || !validFieldName(name) {
		return
	}
	key := http.CanonicalHeaderKey(name)
	if isHop(key, nil) || key == "Content-Length" {
		return
	}
	value = textTrim(value)
	if in := b.x.state.chain.inject; in != nil && in.Leaks(value) {
		b.x.Event.Reason = "upstream echoed an injected secret in trailer " + key + "; removed"
		return
	}
	b.trailer[http.TrailerPrefix+key] = append(b.trailer[http.TrailerPrefix+key], value)
}

// readResponseHead reads and parses a response head into c.in and rb.
func (c *upConn) readResponseHead(method string, rb *respBody) error {
	c.head = c.head[:0]
	for {
		line, err := c.br.ReadSlice('\n')
		if len(c.head)+len(line) > 64<<10 {
			return errUpstreamFraming
		}
		c.head = append(c.head, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if len(c.head) > 0 && errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) == 2 && line[0] == '\r' {
			break
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return errUpstreamFraming // bare LF
		}
	}
	s := string(c.head)
	eol := strings.IndexByte(s, '\n')
	statusLine := s[:eol-1]
	var minor int
	switch {
	case strings.HasPrefix(statusLine, "HTTP/1.1 "):
		minor = 1
	case strings.HasPrefix(statusLine, "HTTP/1.0 "):
	default:
		return errUpstreamFraming
	}
	if len(statusLine) < 12 || len(statusLine) > 12 && statusLine[12] != ' ' {
		return errUpstreamFraming
	}
	code, err := strconv.Atoi(statusLine[9:12])
	if err != nil || code < 100 {
		return errUpstreamFraming
	}
	body := s[eol+1:]
	in := c.in
	clear(in)
	vals := make([]string, strings.Count(body, "\n"))
	nv := 0
	for len(body) > 2 {
		eol := strings.IndexByte(body, '\n')
		line := body[:eol-1]
		body = body[eol+1:]
		colon := strings.IndexByte(line, ':')
		if colon < 1 || !validFieldName(line[:colon]) {
			return errUpstreamFraming
		}
		value := textTrim(line[colon+1:])
		for i := range len(value) {
			if !isValue[value[i]] {
				return errUpstreamFraming
			}
		}
		key := http.CanonicalHeaderKey(line[:colon])
		if prev, ok := in[key]; ok {
			in[key] = append(prev, value)
			continue
		}
		vals[nv] = value
		in[key] = vals[nv : nv+1 : nv+1]
		nv++
	}
	*rb = respBody{status: code, length: -1}
	if code < 200 {
		return nil
	}
	conn := in["Connection"]
	rb.close = minor == 0 && !hasToken(conn, "keep-alive") || hasToken(conn, "close")
	te, hasTE := in["Transfer-Encoding"]
	cl, hasCL := in["Content-Length"]
	switch {
	case method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified:
		rb.length = 0
	case hasTE && hasCL, hasTE && minor == 0:
		return errUpstreamFraming
	case hasTE:
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return errUpstreamFraming
		}
		rb.chunked = true
	case hasCL:
		n, ok := parseDecimal([]byte(cl[0]))
		for _, v := range cl[1:] {
			if v != cl[0] {
				ok = false
			}
		}
		if !ok {
			return errUpstreamFraming
		}
		rb.length = int64(n)
		if len(cl) > 1 {
			in["Content-Length"] = cl[:1]
		}
	default:
		rb.close = true // until the upstream closes
	}
	return nil
}
