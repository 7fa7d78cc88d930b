package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strconv"
	"sync"
)

// Wire is what the proxy saw of one HTTP/1.x request on the connection,
// before net/http parsed it: the header names in the order the client sent
// them, and framing that net/http would silently repair.
type Wire struct {
	// HeaderOrder is the header-order fingerprint: "h1:" and the first 16
	// hex digits of the SHA-256 of the header names, as sent (case kept),
	// joined by ",". Clients built on different HTTP stacks send the same
	// headers in different orders and cases, whatever User-Agent they
	// claim.
	HeaderOrder string
	// Ambiguous names a framing ambiguity ("Content-Length with
	// Transfer-Encoding"); the proxy refuses such a request with 400 and
	// closes the connection, whatever net/http would have made of it.
	Ambiguous string
}

// maxWireQueue bounds the heads read ahead of the handler (pipelining).
const maxWireQueue = 16

// wireConn watches the bytes net/http reads from a connection and follows
// HTTP/1.1 framing (RFC 9112) alongside it: for each request head it records
// a Wire, then skips the body by Content-Length or chunked coding. It
// follows net/http's choices (Transfer-Encoding wins over Content-Length;
// HTTP/1.0 ignores Transfer-Encoding), so both stay on the same request
// boundaries. When it cannot follow (a malformed head, HTTP/2's preface, a
// head larger than its limit) it stops for the connection: net/http refuses
// what is malformed, and the requests after that carry no Wire.
//
// Reads come from the server's connection goroutine and its background
// reader; the queue is guarded by mu.
type wireConn struct {
	net.Conn
	f    wireFramer
	info connInfo

	mu    sync.Mutex
	queue []Wire
}

func newWireConn(c net.Conn, maxHead int) *wireConn {
	w := &wireConn{Conn: c}
	w.info.wire = w
	w.f.maxHead = maxHead
	w.f.emit = w.push
	return w
}

func (w *wireConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if n > 0 {
		w.mu.Lock()
		w.f.feed(p[:n])
		w.mu.Unlock()
	}
	return n, err
}

func (w *wireConn) push(x Wire) {
	if len(w.queue) < maxWireQueue {
		w.queue = append(w.queue, x)
	}
}

// next returns the Wire of the next request the handler sees. net/http
// calls handlers in request order and closes the connection after any
// request it refuses itself, so heads and handlers stay paired.
func (w *wireConn) next() (Wire, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return Wire{}, false
	}
	x := w.queue[0]
	w.queue = w.queue[1:]
	return x, true
}

// framer states.
const (
	wireHead = iota
	wireBody
	wireChunkSize
	wireChunkData
	wireChunkCRLF
	wireTrailer
	wireStopped
)

// wireFramer is wireConn's parser, separate from the connection so it can
// be fuzzed and tested on byte slices.
type wireFramer struct {
	state   int
	maxHead int
	head    []byte // the head so far
	line    []byte // the chunk-size or trailer line so far
	remain  int64  // body or chunk bytes left
	emit    func(Wire)
}

func (f *wireFramer) feed(p []byte) {
	for len(p) > 0 {
		switch f.state {
		case wireStopped:
			return
		case wireHead:
			// Leading empty lines before a request line are skipped, as
			// robust parsers do (RFC 9112 §2.2).
			if len(f.head) == 0 {
				for len(p) > 0 && (p[0] == '\r' || p[0] == '\n') {
					p = p[1:]
				}
				if len(p) == 0 {
					return
				}
			}
			old := len(f.head)
			buf := p
			if old > 0 {
				f.head = append(f.head, p...)
				buf = f.head
			}
			end := headEnd(buf, max(0, old-2))
			if end < 0 {
				if old == 0 {
					f.head = append(f.head, p...)
				}
				if len(f.head) > f.maxHead {
					f.stop()
				}
				return
			}
			if end > f.maxHead {
				f.stop()
				return
			}
			f.onHead(buf[:end])
			p = p[end-old:]
			if f.head != nil {
				f.head = f.head[:0]
			}
		case wireBody:
			n := min(int64(len(p)), f.remain)
			p, f.remain = p[n:], f.remain-n
			if f.remain == 0 {
				f.state = wireHead
			}
		case wireChunkSize, wireTrailer:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				f.line = append(f.line, p...)
				if len(f.line) > 4096 {
					f.stop()
				}
				return
			}
			f.line = append(f.line, p[:i+1]...)
			p = p[i+1:]
			line := bytes.TrimSuffix(bytes.TrimSuffix(f.line, []byte("\n")), []byte("\r"))
			f.line = f.line[:0]
			if f.state == wireTrailer {
				if len(line) == 0 {
					f.state = wireHead
				}
				continue
			}
			size, ok := chunkSize(line)
			switch {
			case !ok:
				f.stop()
			case size == 0:
				f.state = wireTrailer
			default:
				f.remain, f.state = size, wireChunkData
			}
		case wireChunkData:
			n := min(int64(len(p)), f.remain)
			p, f.remain = p[n:], f.remain-n
			if f.remain == 0 {
				f.state, f.remain = wireChunkCRLF, 2
			}
		case wireChunkCRLF:
			// The CRLF after chunk data; net/http refuses anything else.
			n := min(int64(len(p)), f.remain)
			p, f.remain = p[n:], f.remain-n
			if f.remain == 0 {
				f.state = wireChunkSize
			}
		}
	}
}

func (f *wireFramer) stop() {
	f.state = wireStopped
	f.head, f.line = nil, nil
}

// chunkSize parses a chunk-size line (hex digits, then optional
// extensions).
func chunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 16 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(line), 16, 64)
	return n, err == nil && n >= 0
}

// onHead reads one request head (request line, header lines, empty line),
// emits its Wire and sets up the body.
func (f *wireFramer) onHead(head []byte) {
	lines := bytes.Split(bytes.TrimRight(head, "\r\n"), []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimSuffix(l, []byte("\r"))
	}
	reqLine := lines[0]
	if bytes.HasSuffix(reqLine, []byte(" HTTP/2.0")) {
		f.stop() // the h2c preface: HTTP/2 frames follow
		return
	}
	http10 := bytes.HasSuffix(reqLine, []byte(" HTTP/1.0"))
	h := sha256.New()
	var (
		cl, te     [][]byte
		names      int
		w          Wire
		chunkedEnd bool
	)
	for _, l := range lines[1:] {
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			continue // obs-fold continuation of the previous value
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			f.stop() // net/http refuses the request and closes
			return
		}
		if names > 0 {
			h.Write([]byte{','})
		}
		h.Write(name)
		names++
		value = bytes.Trim(value, " \t")
		switch {
		case asciiEqualFold(name, "Content-Length"):
			cl = append(cl, value)
		case asciiEqualFold(name, "Transfer-Encoding"):
			te = append(te, value)
			chunkedEnd = asciiEqualFold(lastCoding(value), "chunked")
		}
	}
	sum := h.Sum(nil)
	w.HeaderOrder = "h1:" + hex.EncodeToString(sum[:8])
	if len(cl) > 0 && len(te) > 0 {
		w.Ambiguous = "Content-Length with Transfer-Encoding"
	}
	f.emit(w)
	switch {
	case len(te) > 0 && !http10:
		if len(te) != 1 || !chunkedEnd {
			f.stop() // net/http answers 501 and closes
			return
		}
		f.state = wireChunkSize
	case len(cl) > 0:
		n, err := strconv.ParseInt(string(cl[0]), 10, 64)
		if err != nil || n < 0 || cl[0][0] == '+' {
			f.stop()
			return
		}
		if n == 0 {
			f.state = wireHead
		} else {
			f.state, f.remain = wireBody, n
		}
	default:
		f.state = wireHead
	}
}

// headEnd returns the index just past the empty line that ends a head in
// b, searching from from, or -1. Lines end in LF with an optional CR, as
// net/http reads them.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

func lastCoding(v []byte) []byte {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return bytes.Trim(v, " \t")
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}
