package replay

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Raw HTTP/1.1 requests laid end to end, as in the CSIC 2010 data set: a
// request line, header lines, a blank line, and a body of Content-Length
// bytes (none without one; a chunked body runs to the next request line).
// Lines that are neither part of a request nor blank are reported, one
// report per run of such lines. There are no timestamps or client
// addresses: times come from ImportConfig.Start and Interval, and the
// principal is empty unless a header names one.

type rawHTTPFormat struct{}

// rawRequest is the request being read.
type rawRequest struct {
	lr       logRequest
	proto    string
	inBody   bool
	body     int64 // bytes of body lines read, CRLF-joined
	bodySeen bool
	// want is the body's length: Content-Length, 0 without one, -1 for a
	// chunked body (read to the next request line).
	want    int64
	badLine string // a header line that does not parse
}

func (rawHTTPFormat) parse(in io.Reader, _ string, add func(*logRequest), bad func(int, error)) error {
	lr := newLineReader(in)
	var cur *rawRequest
	junk, junkAt := 0, 0
	flushJunk := func() {
		if junk > 0 {
			bad(junkAt, fmt.Errorf("%d lines that are not part of an HTTP request", junk))
			junk = 0
		}
	}
	finish := func() {
		if cur == nil {
			return
		}
		if err := cur.finish(); err != nil {
			bad(cur.lr.line, err)
		} else {
			add(&cur.lr)
		}
		cur = nil
	}
	for {
		line, err := lr.next()
		switch {
		case err == io.EOF:
			flushJunk()
			if cur != nil && !cur.inBody {
				bad(cur.lr.line, errors.New("input ends inside the request's headers"))
				return nil
			}
			finish()
			return nil
		case err == errLongLine:
			if cur != nil {
				cur.badLine = "a line longer than 1 MiB"
			} else {
				bad(lr.line, err)
			}
			continue
		case err != nil:
			flushJunk()
			if cur != nil {
				bad(cur.lr.line, fmt.Errorf("input ends inside this request: %w", err))
			}
			return err
		}
		s := string(line)
		if method, target, proto, ok := requestLine(s); ok && (cur == nil || cur.inBody) {
			flushJunk()
			finish()
			cur = &rawRequest{lr: logRequest{line: lr.line, method: method, target: target}, proto: proto}
			continue
		}
		switch {
		case cur == nil:
			if strings.TrimSpace(s) != "" {
				if junk == 0 {
					junkAt = lr.line
				}
				junk++
			}
		case !cur.inBody && s == "":
			cur.inBody = true
			cur.want = cur.bodyLength()
			if cur.want == 0 {
				finish()
			}
		case !cur.inBody:
			cur.header(s)
		case s != "" || cur.bodySeen:
			if cur.bodySeen {
				cur.body += 2
				cur.lr.body = append(cur.lr.body, "\r\n"...)
			}
			cur.body += int64(len(s))
			cur.bodySeen = true
			if len(cur.lr.body) < maxLine {
				cur.lr.body = append(cur.lr.body, s...)
			}
			if cur.want >= 0 && cur.body >= cur.want {
				finish()
			}
		}
	}
}

// header reads one header line.
func (rq *rawRequest) header(s string) {
	if rq.badLine != "" {
		return
	}
	name, value, ok := strings.Cut(s, ":")
	if !ok || !isToken(name) {
		rq.badLine = fmt.Sprintf("header line %q", clipText(s))
		return
	}
	if rq.lr.header == nil {
		rq.lr.header = http.Header{}
	}
	rq.lr.header.Add(name, strings.TrimSpace(value))
	rq.lr.order = append(rq.lr.order, name)
}

// bodyLength is the length of the body the headers announce: the
// Content-Length, -1 for a chunked body, else 0.
func (rq *rawRequest) bodyLength() int64 {
	h := rq.lr.header
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			return n
		}
		return -1
	}
	if strings.EqualFold(h.Get("Transfer-Encoding"), "chunked") {
		return -1
	}
	return 0
}

// finish checks the request as the proxy's HTTP server would.
func (rq *rawRequest) finish() error {
	lr := &rq.lr
	if rq.badLine != "" {
		return errors.New(rq.badLine + ": the proxy's server refuses it")
	}
	h := lr.header
	lr.host = h.Get("Host")
	if len(h.Values("Host")) > 1 {
		return errors.New("more than one Host header")
	}
	if lr.host != "" {
		lr.has |= fieldHost
	} else if rq.proto == "HTTP/1.1" && !strings.Contains(lr.target, "://") {
		return errors.New("no Host header (HTTP/1.1 requires one; the proxy's server refuses the request)")
	}
	if h != nil {
		lr.has |= fieldHeaders
	}
	lr.has |= fieldRequestBytes
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("Content-Length %q: not a length", clipText(cl))
		}
		lr.reqBytes = n
		if int64(len(lr.body)) > n {
			lr.body = lr.body[:n] // the line ending after the body
		}
		if rq.body < n {
			return fmt.Errorf("body of %d bytes, Content-Length %d: the input ends inside it", rq.body, n)
		}
	} else {
		lr.reqBytes = rq.body
	}
	return nil
}

// requestLine reads "METHOD target HTTP/x.y" (HTTP/0.9: no version),
// where the method is upper-case letters and the target a path, an
// absolute URL or "*": a line that reads so starts a request.
func requestLine(s string) (method, target, proto string, ok bool) {
	method, rest, ok := strings.Cut(s, " ")
	if !ok || method == "" || len(method) > 16 {
		return "", "", "", false
	}
	for i := 0; i < len(method); i++ {
		if method[i] < 'A' || method[i] > 'Z' {
			return "", "", "", false
		}
	}
	target = rest
	if i := strings.LastIndexByte(rest, ' '); i >= 0 {
		p := rest[i+1:]
		if len(p) == 8 && strings.HasPrefix(p, "HTTP/") && p[6] == '.' {
			target, proto = rest[:i], p
		}
	}
	target = strings.TrimSpace(target)
	switch {
	case strings.HasPrefix(target, "/"), strings.HasPrefix(target, "http://"), strings.HasPrefix(target, "https://"),
		target == "*", method == http.MethodConnect && target != "":
		return method, target, proto, true
	}
	return "", "", "", false
}
