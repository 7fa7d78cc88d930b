package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
)

// headError is a head the native engine refuses before any handler runs,
// answered as net/http answers it: a plain-text status and the
// connection closed.
type headError struct {
	status int
	msg    string
}

func (e *headError) Error() string { return e.msg }

var (
	errMalformedHead    = &headError{http.StatusBadRequest, "malformed HTTP request"}
	errHeadTooLong      = &headError{http.StatusRequestHeaderFieldsTooLarge, "request header fields too large"}
	errNoHost           = &headError{http.StatusBadRequest, "missing required Host header"}
	errManyHosts        = &headError{http.StatusBadRequest, "too many Host headers"}
	errBadHost          = &headError{http.StatusBadRequest, "malformed Host header"}
	errBadURI           = &headError{http.StatusBadRequest, "malformed request URI"}
	errExpectation      = &headError{http.StatusExpectationFailed, "unsupported Expect"}
	errTransferEncoding = &headError{http.StatusNotImplemented, "unsupported transfer encoding"}
)

// readHead reads one request head, up to and including its empty line,
// into c.head. The bytes come through the connection's wireConn, so the
// framer has already judged them: a head it refuses arrives cut short and
// ended, or poisoned so that parseHead refuses it. io.EOF means the client
// closed between requests.
func (c *h1conn) readHead() error {
	c.head = c.head[:0]
	if c.lastPOST {
		// RFC 9112 §2.2 tolerance for clients that end a POST body with a
		// stray CRLF, as net/http allows it: at most 4 bytes.
		if b, _ := c.br.Peek(4); len(b) > 0 {
			n := 0
			for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
				n++
			}
			_, _ = c.br.Discard(n)
		}
	}
	for {
		line, err := c.br.ReadSlice('\n')
		if len(c.head)+len(line) > c.maxHead+len(wirePoison) {
			return errHeadTooLong
		}
		c.head = append(c.head, line...)
		switch {
		case err == nil:
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case len(c.head) == 0 && errors.Is(err, io.EOF):
			return io.EOF
		default:
			if len(c.head) > 0 && errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) == 2 && line[0] == '\r' || len(line) == 1 {
			if len(c.head) == len(line) {
				return errMalformedHead // an empty request line
			}
			return nil
		}
	}
}

// parseHead parses c.head into c.req, reusing the connection's request,
// header map and URL. The head is copied into one string, of which the
// method, target, header names and values are views: one allocation for
// the head, one for its values' slice.
func (c *h1conn) parseHead() (*http.Request, error) {
	s := string(c.head)
	eol := strings.IndexByte(s, '\n')
	if eol < 1 || s[eol-1] != '\r' {
		return nil, errMalformedHead
	}
	reqLine := s[:eol-1]
	sp1 := strings.IndexByte(reqLine, ' ')
	sp2 := strings.LastIndexByte(reqLine, ' ')
	if sp1 < 1 || sp2 <= sp1+1 {
		return nil, errMalformedHead
	}
	method, target, proto := reqLine[:sp1], reqLine[sp1+1:sp2], reqLine[sp2+1:]
	r := c.req
	// The request is the connection's and reused: what net/http fills on
	// a request once (a parsed form, a mux's pattern, a client's response)
	// must not carry over from the one before.
	r.Form, r.PostForm, r.MultipartForm, r.Response, r.Pattern = nil, nil, nil, nil, ""
	switch proto {
	case "HTTP/1.1":
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	case "HTTP/1.0":
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
	default:
		return nil, errMalformedHead
	}
	for i := range len(method) {
		if !isToken[method[i]] {
			return nil, errMalformedHead
		}
	}
	for i := range len(target) {
		if !isTarget[target[i]] {
			return nil, errBadURI
		}
	}

	// Header lines: count them first, so their values share one slice.
	body := s[eol+1:]
	lines := strings.Count(body, "\n") - 1
	if lines < 0 {
		return nil, errMalformedHead
	}
	h := c.hdr
	clear(h)
	vals := make([]string, lines)
	nv := 0
	for len(body) > 2 {
		eol := strings.IndexByte(body, '\n')
		if eol < 1 || body[eol-1] != '\r' {
			return nil, errMalformedHead
		}
		line := body[:eol-1]
		body = body[eol+1:]
		colon := strings.IndexByte(line, ':')
		if colon < 1 {
			return nil, errMalformedHead
		}
		name := line[:colon]
		for i := range len(name) {
			if !isToken[name[i]] {
				return nil, errMalformedHead
			}
		}
		value := textproto.TrimString(line[colon+1:])
		for i := range len(value) {
			if !isValue[value[i]] {
				return nil, errMalformedHead
			}
		}
		key := c.canonicalKey(name)
		if prev, ok := h[key]; ok {
			h[key] = append(prev, value)
			continue
		}
		vals[nv] = value
		h[key] = vals[nv : nv+1 : nv+1]
		nv++
	}
	if body != "\r\n" {
		return nil, errMalformedHead
	}

	r.Method, r.RequestURI, r.Header = method, target, h
	if err := c.setURL(method, target); err != nil {
		return nil, err
	}
	hosts, haveHost := h["Host"]
	switch {
	case len(hosts) > 1:
		return nil, errManyHosts
	case r.ProtoMinor == 1 && !haveHost && method != http.MethodConnect:
		return nil, errNoHost
	case haveHost && !validHost(hosts[0]):
		return nil, errBadHost
	}
	r.Host = r.URL.Host
	if r.Host == "" && haveHost {
		r.Host = hosts[0]
	}
	delete(h, "Host")
	if p, ok := h["Pragma"]; ok && len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	r.Close = shouldClose(r.ProtoMinor, h)
	if err := c.setBody(r); err != nil {
		return nil, err
	}
	return r, nil
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey, remembering per
// connection the names a client sends in another case (a client sends the
// same ones on every request), so that they are canonicalised once.
func (c *h1conn) canonicalKey(name string) string {
	if key, ok := c.canon[name]; ok {
		return key
	}
	key := textproto.CanonicalMIMEHeaderKey(name)
	if key != name && len(c.canon) < maxCanon {
		if c.canon == nil {
			c.canon = make(map[string]string)
		}
		// The name is a view of the head: a copy keeps the head from
		// living as long as the connection.
		c.canon[strings.Clone(name)] = key
	}
	return key
}

// maxCanon bounds the names canonicalKey remembers per connection.
const maxCanon = 32

// setURL sets c.req.URL from the request-target as net/http's
// url.ParseRequestURI would: an origin-form target of path characters
// that need no escaping is split in place; anything else (escapes,
// "*", absolute-form, CONNECT's authority-form) goes to net/url.
func (c *h1conn) setURL(method, target string) error {
	r := c.req
	u := &c.url
	*u = url.URL{}
	r.URL = u
	if target[0] == '/' {
		path, query, hasQuery := strings.Cut(target, "?")
		plain := true
		for i := range len(path) {
			if !isPlainPath[path[i]] {
				plain = false
				break
			}
		}
		if plain && (!hasQuery || !strings.Contains(query, "?")) {
			u.Path = path
			switch {
			case hasQuery && query == "":
				u.ForceQuery = true
			case hasQuery:
				u.RawQuery = query
			}
			return nil
		}
	}
	var (
		p   *url.URL
		err error
	)
	if method == http.MethodConnect && target[0] != '/' {
		p, err = url.ParseRequestURI("http://" + target)
		if p != nil {
			p.Scheme = ""
		}
	} else {
		p, err = url.ParseRequestURI(target)
	}
	if err != nil {
		return errBadURI
	}
	*u = *p
	return nil
}

// isPlainPath: the bytes url.URL.EscapedPath keeps as they are, so a path
// of only these has no RawPath.
var isPlainPath = byteClass(func(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		stringsContains("-_.~$&+,/:;=@", c)
})

// shouldClose reports whether the connection closes after this request:
// HTTP/1.0 unless it asks for keep-alive, HTTP/1.1 when it asks to close.
func shouldClose(minor int, h http.Header) bool {
	conn := h["Connection"]
	if minor == 0 {
		return !hasToken(conn, "keep-alive")
	}
	return hasToken(conn, "close")
}

// hasToken reports whether the comma-separated values name token (ASCII
// case-insensitive).
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// validHost reports whether a Host header has only the bytes net/http
// accepts in one (httpguts.ValidHostHeader).
func validHost(h string) bool {
	for i := range len(h) {
		if !isHostByte[h[i]] {
			return false
		}
	}
	return true
}

var isHostByte = byteClass(func(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		stringsContains("!$&'()*+,-.:;=[]_~%", c)
})

// setBody frames the request body as the framer did: chunked when
// Transfer-Encoding says so (the framer let only "chunked" through), else
// Content-Length, else none.
func (c *h1conn) setBody(r *http.Request) error {
	b := &c.body
	*b = h1body{c: c}
	r.TransferEncoding, r.Trailer = nil, nil
	h := r.Header
	// HTTP/1.0 has no Transfer-Encoding (net/http ignores it there); the
	// framer refuses such a request, which begin pairs with its refusal.
	if te, ok := h["Transfer-Encoding"]; ok && r.ProtoMinor == 1 {
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return errTransferEncoding
		}
		delete(h, "Transfer-Encoding")
		delete(h, "Content-Length")
		r.TransferEncoding = chunkedCoding
		r.ContentLength = -1
		b.chunked = httputil.NewChunkedReader(c.br)
		if tr, ok := h["Trailer"]; ok && len(tr) > 0 {
			r.Trailer = make(http.Header)
			for _, v := range tr {
				for k := range strings.SplitSeq(v, ",") {
					if k = textproto.TrimString(k); k != "" {
						r.Trailer[textproto.CanonicalMIMEHeaderKey(k)] = nil
					}
				}
			}
		}
		r.Body = b
	} else if cl, ok := h["Content-Length"]; ok {
		n, ok := parseDecimal([]byte(cl[0]))
		if len(cl) != 1 || !ok {
			return errMalformedHead
		}
		r.ContentLength = int64(n)
		b.remain = int64(n)
		r.Body = b
	} else {
		r.ContentLength = 0
		r.Body = http.NoBody
	}
	if r.ContentLength == 0 {
		r.Body = http.NoBody
		b.done = true
	}
	if ex, ok := h["Expect"]; ok {
		if len(ex) == 1 && strings.EqualFold(ex[0], "100-continue") && r.ProtoMinor == 1 {
			b.expect = r.ContentLength != 0
		} else {
			return errExpectation
		}
	}
	return nil
}

var chunkedCoding = []string{"chunked"}

// h1body is a request body on the native engine: Content-Length bytes or
// a chunked body read from the connection's buffer. Its first Read sends
// "100 Continue" when the client waits for it. It belongs to the
// connection and is reset for every request; reads after the handler
// returns fail.
type h1body struct {
	c       *h1conn
	remain  int64     // Content-Length bytes left
	chunked io.Reader // chunked body, nil otherwise
	expect  bool      // 100 Continue not sent yet
	read    bool      // Read was called
	done    bool      // the body ended (EOF)
	closed  bool      // the handler returned or closed it
	err     error     // sticky read error
}

var errBodyClosed = errors.New("http: invalid Read on closed Body")

// Read implements io.Reader.
func (b *h1body) Read(p []byte) (int, error) {
	switch {
	case b.closed:
		return 0, errBodyClosed
	case b.err != nil:
		return 0, b.err
	case b.done:
		return 0, io.EOF
	}
	b.read = true
	if b.expect {
		b.expect = false
		if err := b.c.w.sendContinue(); err != nil {
			b.err = err
			return 0, err
		}
	}
	if b.chunked != nil {
		n, err := b.chunked.Read(p)
		if errors.Is(err, io.EOF) {
			if terr := b.c.readTrailer(); terr != nil {
				b.err = terr
				return n, terr
			}
			b.done = true
			return n, io.EOF
		}
		if err != nil {
			b.err = err
		}
		return n, err
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		b.done = true
		return n, io.EOF
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
	}
	return n, err
}

// Close implements io.Closer: the rest of the body is left for the
// connection loop, which discards it or closes the connection.
func (b *h1body) Close() error { return nil }

// maxDiscard is how much of a body the handler left unread the loop reads
// away to keep the connection; more closes it, as net/http does.
const maxDiscard = 256 << 10

// drain reads what the handler left of the body. It reports whether the
// connection can serve another request.
func (b *h1body) drain() bool {
	if b.c.req.Body == http.NoBody || b.done {
		return b.err == nil
	}
	if b.expect && !b.read {
		// The client may still be waiting for 100 Continue: it decides
		// whether the body follows, so the connection cannot go on.
		return false
	}
	n, err := io.CopyN(io.Discard, b, maxDiscard+1)
	return n <= maxDiscard && (err == nil || errors.Is(err, io.EOF)) && b.done
}

// readTrailer reads a chunked body's trailer section (the framer has
// bounded and checked it) into the request's Trailer.
func (c *h1conn) readTrailer() error {
	r := c.req
	for n := 0; ; {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if n += len(line); n > maxTrailer+2 {
			return errMalformedHead
		}
		if len(line) == 2 && line[0] == '\r' {
			return nil
		}
		name, value, ok := strings.Cut(strings.TrimRight(string(line), "\r\n"), ":")
		if !ok {
			return errMalformedHead
		}
		if r.Trailer == nil {
			r.Trailer = make(http.Header)
		}
		r.Trailer.Add(name, textproto.TrimString(value))
	}
}
