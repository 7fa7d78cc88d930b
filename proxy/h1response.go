package proxy

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// pendingMax is how much of a response body the writer holds before it
// commits to a framing: a body that ends within it gets a Content-Length
// (as net/http does for its 2 KiB), a longer one of unknown length is
// sent chunked.
const pendingMax = 4 << 10

// h1writer is the native engine's http.ResponseWriter, one per connection,
// reset for every request. It writes the head from the header map on the
// first body byte, flush or the handler's return, framing the body by the
// handler's Content-Length, or by its length when it ends within
// pendingMax, else chunked (HTTP/1.1) or by closing (HTTP/1.0). It also
// implements http.Flusher and http.Hijacker (protocol upgrades).
type h1writer struct {
	c      *h1conn
	req    *http.Request
	header http.Header

	status    int   // the final status, 0 before WriteHeader or Write
	committed bool  // the head is in c.bw
	chunked   bool  // the body is chunked
	noBody    bool  // HEAD, 1xx, 204, 304: no body bytes go out
	cl        int64 // the declared Content-Length, -1 if none
	written   int64 // body bytes the handler wrote
	pending   []byte
	fields    []byte // the header fields as WriteHeader found them
	hasType   bool   // they include Content-Type
	hasDate   bool   // they include Date
	saidClose bool   // they include "Connection: close"
	close     bool   // close the connection after this response
	hijacked  bool
	err       error // sticky write error
}

func (w *h1writer) reset(r *http.Request) {
	clear(w.header)
	*w = h1writer{c: w.c, req: r, header: w.header, pending: w.pending[:0], fields: w.fields[:0], cl: -1, close: r.Close}
}

// Header implements http.ResponseWriter.
func (w *h1writer) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter. A 1xx status other than
// 101 is sent at once as an interim response, to an HTTP/1.1 client only.
func (w *h1writer) WriteHeader(code int) {
	if w.status != 0 || w.hijacked {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		if w.req.ProtoMinor == 0 {
			// An HTTP/1.0 client would take it for the final response
			// (RFC 9110 §15.2: never sent to one).
			return
		}
		if code == http.StatusContinue && w.c.body.expect {
			w.c.body.expect = false
		}
		w.writeStatusLine(code)
		w.c.bw.Write(appendFields(w.fields[:0], w.header))
		w.c.bw.WriteString("\r\n")
		if err := w.c.bw.Flush(); err != nil {
			w.err = err
		}
		return
	}
	w.status = code
	// The fields are taken now, as net/http takes them: changes after
	// WriteHeader do not count, and the values may be views into what
	// the handler releases before the head goes out.
	h := w.header
	delete(h, "Transfer-Encoding")
	_, w.hasType = h["Content-Type"]
	_, w.hasDate = h["Date"]
	w.saidClose = hasToken(h["Connection"], "close")
	w.fields = appendFields(w.fields[:0], h)
	if cl := w.header["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		}
	}
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent ||
		code == http.StatusNotModified || code == http.StatusSwitchingProtocols
}

// Write implements http.ResponseWriter.
func (w *h1writer) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			w.written += int64(len(p))
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if w.cl < 0 && len(w.pending)+len(p) <= pendingMax {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	return len(p), w.writeBody(p)
}

func (w *h1writer) writeBody(p []byte) error {
	if w.err != nil || len(p) == 0 {
		return w.err
	}
	bw := w.c.bw
	if w.chunked {
		var b [20]byte
		bw.Write(strconv.AppendInt(b[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, w.err = bw.WriteString("\r\n")
	} else {
		_, w.err = bw.Write(p)
	}
	return w.err
}

// Flush implements http.Flusher: the head and what is written so far go
// out now.
func (w *h1writer) Flush() {
	if w.hijacked {
		return
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	if w.err == nil {
		w.err = w.c.bw.Flush()
	}
}

// commit writes the head and the pending body. done reports the handler
// has returned, so the pending bytes are the whole body.
func (w *h1writer) commit(done bool) {
	w.committed = true
	h := w.header
	if !w.noBody && w.cl < 0 {
		switch {
		case done:
			if w.written > 0 || w.req.Method != http.MethodHead {
				w.cl = int64(len(w.pending))
			}
		case w.req.ProtoMinor >= 1:
			w.chunked = true
		default:
			w.close = true
		}
	}
	if w.saidClose {
		w.close = true
	}
	if w.c.s.shuttingDown() {
		w.close = true
	}
	if w.req.ProtoMinor == 0 && !w.close && w.cl < 0 && !w.noBody {
		w.close = true // HTTP/1.0 needs a length to keep the connection
	}
	w.writeStatusLine(w.status)
	bw := w.c.bw
	if !w.hasDate {
		bw.WriteString("Date: ")
		bw.Write(w.c.date())
		bw.WriteString("\r\n")
	}
	bw.Write(w.fields)
	if !w.noBody && w.written > 0 && !w.hasType {
		bw.WriteString("Content-Type: ")
		bw.WriteString(http.DetectContentType(w.pending))
		bw.WriteString("\r\n")
	}
	if w.cl >= 0 && !w.noBody {
		if _, ok := h["Content-Length"]; !ok {
			var b [20]byte
			bw.WriteString("Content-Length: ")
			bw.Write(strconv.AppendInt(b[:0], w.cl, 10))
			bw.WriteString("\r\n")
		}
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.close && !w.saidClose:
		bw.WriteString("Connection: close\r\n")
	case !w.close && w.req.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
	p := w.pending
	w.pending = w.pending[:0]
	if !w.noBody {
		w.writeBody(p)
	}
}

func (w *h1writer) writeStatusLine(code int) {
	bw := w.c.bw
	if code == http.StatusOK {
		bw.WriteString("HTTP/1.1 200 OK\r\n")
		return
	}
	var b [3]byte
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
}

// appendFields appends the header map h as net/http writes it: a value's
// CR and LF become spaces, fields with invalid names are left out, and
// trailer fields (http.TrailerPrefix) wait for the end of the body.
func appendFields(b []byte, h http.Header) []byte {
	for k, vs := range h {
		if !validFieldName(k) || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			b = append(b, textTrim(v)...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

func textTrim(v string) string {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := range len(k) {
		if !isToken[k[i]] {
			return false
		}
	}
	return true
}

// finish completes the response once the handler has returned.
func (w *h1writer) finish() error {
	if w.hijacked {
		return nil
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	if w.chunked && w.err == nil {
		bw := w.c.bw
		bw.WriteString("0\r\n")
		w.writeTrailers()
		_, w.err = bw.WriteString("\r\n")
	}
	if w.cl >= 0 && w.written < w.cl && !w.noBody {
		// The handler wrote less than it declared: the client cannot find
		// the end of the response.
		w.close = true
	}
	if w.err == nil {
		w.err = w.c.bw.Flush()
	}
	return w.err
}

// writeTrailers writes the trailer fields the handler declared in
// "Trailer" or set with http.TrailerPrefix.
func (w *h1writer) writeTrailers() {
	bw := w.c.bw
	for _, decl := range w.header["Trailer"] {
		for k := range strings.SplitSeq(decl, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if validFieldName(k) {
				writeField(bw, k, w.header[k])
			}
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && validFieldName(name) {
			writeField(bw, name, vs)
		}
	}
}

// writeField writes a field's values as appendFields does: a CR or LF in
// a value, which would end the line (or the message), becomes a space.
func writeField(bw *bufio.Writer, name string, values []string) {
	for _, v := range values {
		if strings.ContainsAny(v, "\r\n") {
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
		}
		bw.WriteString(name)
		bw.WriteString(": ")
		bw.WriteString(textTrim(v))
		bw.WriteString("\r\n")
	}
}

// abort cuts the response short: nothing more is written, and the
// connection closes without ending the body, so the client sees a
// truncated response rather than a complete one.
func (w *h1writer) abort() {
	if w.err == nil {
		w.err = errAborted
	}
	w.close = true
}

var errAborted = errors.New("response aborted")

// sendContinue answers "Expect: 100-continue" when the handler first
// reads the body.
func (w *h1writer) sendContinue() error {
	if w.committed || w.hijacked {
		return nil
	}
	w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return w.c.bw.Flush()
}

// Hijack implements http.Hijacker, for protocol upgrades: the connection
// and its buffers go to the caller, and the framer lets the bytes that
// follow pass unexamined.
func (w *h1writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.committed {
		return nil, nil, errors.New("hijacking a connection whose response has begun")
	}
	w.hijacked = true
	w.c.hijack()
	return w.c.wire, bufio.NewReadWriter(w.c.br, w.c.bw), nil
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *h1writer) SetReadDeadline(t time.Time) error { return w.c.wire.SetReadDeadline(t) }

// SetWriteDeadline sets the connection's write deadline.
func (w *h1writer) SetWriteDeadline(t time.Time) error { return w.c.wire.SetWriteDeadline(t) }

// Interface guards.
var (
	_ http.ResponseWriter = (*h1writer)(nil)
	_ http.Flusher        = (*h1writer)(nil)
	_ http.Hijacker       = (*h1writer)(nil)
)
