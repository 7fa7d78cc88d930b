package proxy

import (
	"io"
	"net"
	"sync"
)

// Wire is what the proxy saw of one HTTP/1.x request head on the
// connection, before net/http parsed it: the header names in the order the
// client sent them, and framing that net/http would silently repair.
type Wire struct {
	// HeaderOrder is the header-order fingerprint: "h1:" and the first 16
	// hex digits of the SHA-256 of the header names, as sent (case kept),
	// joined by ",". Clients built on different HTTP stacks send the same
	// headers in different orders and cases, whatever User-Agent they
	// claim. For a refused head it covers the lines before the fault.
	HeaderOrder string
	// Ambiguous names why the request's framing is refused ("Content-Length
	// with Transfer-Encoding", "obs-fold header line", …); the proxy
	// refuses such a request with 400 and closes the connection, whatever
	// net/http would have made of it.
	Ambiguous string
	// target identifies the request line: FNV-1a of the method, a space and
	// the request-target. The server's handler pairs each request net/http
	// parsed with its head by it (wireConn.begin).
	target uint64
}

// Reasons a head's framing is refused (Wire.Ambiguous).
const (
	reasonCLWithTE       = "Content-Length with Transfer-Encoding"
	reasonTE10           = "Transfer-Encoding in an HTTP/1.0 request"
	reasonTEOther        = "Transfer-Encoding other than chunked"
	reasonCLRepeated     = "repeated Content-Length"
	reasonCLMalformed    = "malformed Content-Length"
	reasonObsFold        = "obs-fold header line"
	reasonBareLF         = "bare LF in the head"
	reasonBareCR         = "CR without LF in the head"
	reasonCTL            = "control character in a header value"
	reasonHeaderLine     = "malformed header line"
	reasonRequestLine    = "malformed request line"
	reasonVersion        = "unsupported HTTP version"
	reasonHeadTooLong    = "head longer than max_header_bytes"
	reasonPreface        = "malformed HTTP/2 preface"
	reasonTooManyPending = "more pipelined requests than the proxy follows"
	reasonUnframed       = "request not framed on the wire"
	// A trailer section's faults stop the framing inside a body, whose
	// head was already served: they are never a Wire's.
	reasonTrailerTooLong = "trailer section too long"
)

// maxWirePending bounds the heads framed ahead of their handlers. net/http
// reads ahead at most its 4 KiB buffer, so a client never gets near it; a
// head beyond it is refused, never passed unexamined.
const maxWirePending = 1024

// maxTrailer bounds a chunked body's trailer section, as net/http's
// buffer does.
const maxTrailer = 4096

// maxChunkLine bounds a chunk-size line, as net/http does.
const maxChunkLine = 4096

// wirePoison ends a line net/http has partly read so that it refuses it
// (a NUL is valid in no request line and no header), then ends the head.
const wirePoison = "\x00\r\n\r\n"

// wireConn sits under net/http on an HTTP/1.x connection and frames the
// bytes net/http reads (RFC 9112) before handing them over: each request
// head is validated line by line as it arrives, its Wire is queued for the
// request's handler, and its body is skipped by Content-Length or chunked
// coding, so the view stays on net/http's request boundaries.
//
// It fails closed. A head it refuses is handed to net/http cut short, up to
// its last good line and then ended (or, when net/http already holds part
// of the bad line, ended so that net/http refuses it), with a refusing Wire
// queued, so that its handler answers 400 and closes the connection; nothing
// after it ever reaches net/http. The same holds when the framing cannot be
// followed (a malformed chunk, a trailer too long) or a request reaches the
// handler without a framed head of the same method and target (begin).
// While the requests before the cut are still being served, reads wait on
// the socket and discard what comes; after, they return io.EOF.
//
// HTTP/2 with prior knowledge (the preface as the connection's first bytes,
// when h2c is on) and hijacked connections pass unexamined.
//
// net/http reads from its connection goroutine and its background reader
// (never both at once); begin, next and end run on the handler's goroutine.
// mu guards everything but the embedded Conn.
type wireConn struct {
	net.Conn
	info connInfo

	mu     sync.Mutex
	f      wireFramer
	queue  []Wire // framed heads whose handler has not begun; a refusal is last
	qhead  int    // queue[qhead:] are pending
	cur    Wire   // the Wire begin paired with the running handler
	hasCur bool
	ended  int    // HTTP/1.x handlers that have returned
	tail   string // bytes the framer added, not yet handed over
}

// newWireConn wraps c. maxHead is net/http's limit on a head's bytes; h2c
// whether the connection may open with HTTP/2's preface.
func newWireConn(c net.Conn, maxHead int, h2c bool) *wireConn {
	w := &wireConn{Conn: c}
	w.info.wire = w
	w.f.maxHead = maxHead
	w.f.h2c = h2c
	w.f.emit = w.push
	return w
}

// Read reads from the connection what net/http may see.
func (w *wireConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		w.mu.Lock()
		if w.tail != "" {
			n := copy(p, w.tail)
			w.tail = w.tail[n:]
			w.mu.Unlock()
			return n, nil
		}
		if w.f.state == wireCut && w.ended >= w.f.cutReq {
			w.mu.Unlock()
			return 0, io.EOF
		}
		w.mu.Unlock()

		n, err := w.Conn.Read(p)
		if n == 0 {
			return 0, err
		}
		w.mu.Lock()
		if w.f.state == wireCut {
			// What follows a refusal is read only so that net/http's
			// background read waits as it would on a quiet client.
			w.mu.Unlock()
			if err != nil {
				return 0, err
			}
			continue
		}
		k, tail := w.f.feed(p[:n])
		if tail != "" {
			c := copy(p[k:], tail)
			k += c
			w.tail = tail[c:]
		}
		w.mu.Unlock()
		if k == 0 && err == nil {
			continue
		}
		return k, err
	}
}

// push queues a framed head for its handler; a clean head is refused when
// maxWirePending are already waiting, a refusal never.
func (w *wireConn) push(x Wire) bool {
	if x.Ambiguous == "" && len(w.queue)-w.qhead >= maxWirePending {
		return false
	}
	if w.qhead > 0 && w.qhead == len(w.queue) {
		w.queue, w.qhead = w.queue[:0], 0
	}
	w.queue = append(w.queue, x)
	return true
}

// begin pairs the request whose handler is starting with the next framed
// head. framed reports an HTTP/1.x request on this connection, whose
// handler must call end when it returns; clean that its head may be served.
// A request without a framed head of the same method and target means the
// view and net/http disagree on the connection's framing: it is refused,
// and nothing more is read.
func (w *wireConn) begin(method, target string) (framed, clean bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f.state == wireH2 || w.f.state == wirePass {
		return false, true
	}
	id := requestID(method, target)
	if w.qhead < len(w.queue) && w.queue[w.qhead].target == id {
		w.cur = w.queue[w.qhead]
		w.qhead++
	} else {
		w.cur = Wire{Ambiguous: reasonUnframed, target: id}
		w.queue, w.qhead = w.queue[:0], 0
		w.f.cut(w.ended)
	}
	w.hasCur = true
	return true, w.cur.Ambiguous == ""
}

// end records that the handler of a request begin paired has returned.
func (w *wireConn) end() {
	w.mu.Lock()
	w.ended++
	w.mu.Unlock()
}

// next returns the Wire of the request the handler serves: the one begin
// paired. For HTTP/2 on this connection it returns false. An HTTP/1.x
// request that begin did not pair gets a refusal.
func (w *wireConn) next() (Wire, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hasCur {
		x := w.cur
		w.cur, w.hasCur = Wire{}, false
		return x, true
	}
	if w.f.state == wireH2 || w.f.state == wirePass {
		return Wire{}, false
	}
	return Wire{Ambiguous: reasonUnframed}, true
}

// hijacked lets the bytes of a connection a handler took over (a protocol
// upgrade) pass unexamined, unless the framing was already refused.
func (w *wireConn) hijacked() {
	w.mu.Lock()
	if w.f.state != wireCut {
		w.f.state = wirePass
	}
	w.mu.Unlock()
}

// requestID is Wire.target for a request net/http parsed.
func requestID(method, target string) uint64 {
	h := uint64(fnvOffset)
	for i := range len(method) {
		h = (h ^ uint64(method[i])) * fnvPrime
	}
	h = (h ^ ' ') * fnvPrime
	for i := range len(target) {
		h = (h ^ uint64(target[i])) * fnvPrime
	}
	return h
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)
