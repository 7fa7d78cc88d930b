package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// Framer states.
const (
	wireIdle      = iota // between requests: optional empty lines, then a head
	wireHead             // in a request head
	wirePreface          // after "PRI * HTTP/2.0\r\n\r\n": "SM\r\n\r\n" must follow
	wireBody             // in a Content-Length body
	wireChunkSize        // in a chunk-size line
	wireChunkData        // in a chunk's data
	wireChunkCRLF        // in the CRLF after a chunk's data
	wireTrailer          // in a chunked body's trailer section
	wireH2               // HTTP/2 with prior knowledge: bytes pass
	wirePass             // hijacked: bytes pass
	wireCut              // refused or lost: nothing more is handed over
)

// Line scanner states, within a head or a trailer section.
const (
	lineStart   = iota // first byte of a header line, or of the empty line
	lineMethod         // request line: method
	lineTarget         // request line: request-target
	lineVersion        // request line: HTTP version
	lineName           // field name
	lineValue          // field value
	lineCR             // after a CR: only LF may follow
)

// Chunk-size line states.
const (
	chunkDigits = iota
	chunkSpace  // whitespace after the digits
	chunkExt    // after "digits;"
	chunkCR
)

// wireFramer is wireConn's parser, separate from the connection so it can
// be tested and fuzzed on byte slices.
type wireFramer struct {
	state   int
	maxHead int
	h2c     bool
	emit    func(Wire) bool // false: the head cannot be followed
	fed     bool            // bytes came before
	clean   int             // clean heads emitted
	cutReq  int             // after a cut: the requests before it (wireConn.Read)

	// The head or trailer section being read.
	ls      int    // line scanner state
	n       int    // its bytes so far
	line    []byte // the current line's bytes from earlier reads
	lineLen int    // the current line's bytes so far
	mark    int    // the first SP of the request line, or a header's colon
	mark2   int    // the second SP of the request line
	reqLine bool   // the current line is the request line
	hd      headInfo
	order   hash.Hash // header names, for HeaderOrder
	sum     [sha256.Size]byte
	// lastOrder is the last HeaderOrder emitted.
	lastOrder string

	// Bodies.
	remain   uint64 // body or chunk bytes left
	chunk    int    // chunk-size line state
	digits   int
	crlf     int // bytes of the CRLF after a chunk seen
	prefaceN int // bytes of "SM\r\n\r\n" seen
}

// headInfo is what a head's lines said so far.
type headInfo struct {
	first     bool // the connection's first bytes
	http10    bool
	preface   bool // "PRI * HTTP/2.0" opening a connection with h2c on
	target    uint64
	names     int
	cl        int // Content-Length fields
	clBad     bool
	clValue   uint64
	te        int // Transfer-Encoding fields
	teChunked bool
}

// feed frames p, the next bytes read from the connection, and returns how
// many of them net/http may see and bytes to hand over after those. After a
// refusal it hands over nothing more.
func (f *wireFramer) feed(p []byte) (int, string) {
	first := !f.fed
	f.fed = true
	// Where the current line began in p; -1 when in an earlier read.
	lineAt := -1
	if f.state == wireHead || f.state == wireTrailer {
		if f.lineLen == 0 {
			lineAt = 0
		}
	}
	i := 0
	for i < len(p) {
		switch f.state {
		case wireH2, wirePass:
			return len(p), ""
		case wireCut:
			return i, ""
		case wireIdle:
			// Empty lines before a request line are skipped (RFC 9112
			// §2.2); net/http, stricter, refuses most of them itself.
			for i < len(p) && (p[i] == '\r' || p[i] == '\n') {
				i++
			}
			if i == len(p) {
				return len(p), ""
			}
			f.startHead(first && i == 0)
			lineAt = i
		case wireHead, wireTrailer:
			var (
				reason string
				ended  bool
			)
			i, lineAt, reason, ended = f.scan(p, i, lineAt)
			switch {
			case reason == "":
			case f.state == wireTrailer:
				return f.stopBody(i)
			case ended:
				// The head is whole and well formed, only its framing is
				// refused: net/http sees all of it.
				f.refuse(reason)
				return i, ""
			default:
				f.refuse(reason)
				switch {
				case lineAt < 0:
					// net/http holds part of the bad line.
					return 0, wirePoison
				case f.reqLine:
					return lineAt, wirePoison
				default:
					// The head up to its last good line, and its end.
					return lineAt, "\r\n"
				}
			}
		case wirePreface:
			const rest = "SM\r\n\r\n"
			for i < len(p) && f.prefaceN < len(rest) {
				if p[i] != rest[f.prefaceN] {
					f.refuse(reasonPreface)
					return i, ""
				}
				i++
				f.prefaceN++
			}
			if f.prefaceN == len(rest) {
				f.state = wireH2
			}
		case wireBody, wireChunkData:
			k := min(uint64(len(p)-i), f.remain)
			i += int(k)
			f.remain -= k
			if f.remain == 0 {
				if f.state == wireBody {
					f.state = wireIdle
				} else {
					f.state, f.crlf = wireChunkCRLF, 0
				}
			}
		case wireChunkCRLF:
			// net/http refuses anything but CRLF after a chunk's data.
			if p[i] != "\r\n"[f.crlf] {
				return f.stopBody(i)
			}
			i++
			if f.crlf++; f.crlf == 2 {
				f.state, f.n, f.chunk, f.digits, f.remain = wireChunkSize, 0, chunkDigits, 0, 0
			}
		case wireChunkSize:
			var ok bool
			if i, ok = f.chunkLine(p, i); !ok {
				return f.stopBody(i)
			}
			lineAt = i // the trailer section's first line, if it began
		}
	}
	if (f.state == wireHead || f.state == wireTrailer) && f.lineLen > 0 {
		// The line goes on in the next read: keep what it has so far.
		f.line = append(f.line, p[max(lineAt, 0):]...)
	}
	return len(p), ""
}

func (f *wireFramer) startHead(first bool) {
	f.state, f.ls, f.n, f.lineLen, f.reqLine = wireHead, lineMethod, 0, 0, true
	f.line = f.line[:0]
	f.hd = headInfo{first: first}
	if f.order == nil {
		f.order = sha256.New()
	}
	f.order.Reset()
}

// scan reads head or trailer lines from p[i:]. It returns where it
// stopped, where the current line began (-1: in an earlier read), and
// either why the head is refused, with ended reporting that the head is
// whole (its framing is refused, not its syntax), or "" when p is used up
// or the head or trailer section ended.
func (f *wireFramer) scan(p []byte, i, lineAt int) (int, int, string, bool) {
	limit := f.maxHead
	if f.state == wireTrailer {
		limit = maxTrailer
	}
	for i < len(p) {
		if f.n >= limit {
			if f.state == wireTrailer {
				return i, lineAt, reasonTrailerTooLong, false
			}
			return i, lineAt, reasonHeadTooLong, false
		}
		// Most bytes are in runs of one class: skip those at once, up to
		// the limit.
		var class *[256]bool
		switch f.ls {
		case lineMethod, lineName:
			class = &isToken
		case lineTarget:
			class = &isTarget
		case lineValue:
			class = &isValue
		}
		if class != nil {
			j, end := i, min(len(p), i+limit-f.n)
			for j < end && class[p[j]] {
				j++
			}
			if j > i {
				f.n += j - i
				f.lineLen += j - i
				i = j
				continue
			}
		}
		c := p[i]
		switch f.ls {
		case lineMethod:
			switch {
			case c == ' ' && f.lineLen > 0:
				f.ls, f.mark = lineTarget, f.lineLen
			case c == '\n':
				return i, lineAt, reasonBareLF, false
			default:
				return i, lineAt, reasonRequestLine, false
			}
		case lineTarget:
			switch {
			case c == ' ' && f.lineLen > f.mark+1:
				f.ls, f.mark2 = lineVersion, f.lineLen
			case c == '\n':
				return i, lineAt, reasonBareLF, false
			default:
				return i, lineAt, reasonRequestLine, false
			}
		case lineVersion:
			switch {
			case c == '\r':
				f.ls = lineCR
			case c == '\n':
				return i, lineAt, reasonBareLF, false
			case c > ' ' && c < 0x7f:
			default:
				return i, lineAt, reasonRequestLine, false
			}
		case lineStart:
			switch {
			case c == ' ' || c == '\t':
				return i, lineAt, reasonObsFold, false
			case c == '\r':
				f.ls = lineCR
			case c == '\n':
				return i, lineAt, reasonBareLF, false
			case isToken[c]:
				f.ls = lineName
			default:
				return i, lineAt, reasonHeaderLine, false
			}
		case lineName:
			switch {
			case c == ':':
				f.ls, f.mark = lineValue, f.lineLen
			case c == '\n':
				return i, lineAt, reasonBareLF, false
			default:
				return i, lineAt, reasonHeaderLine, false
			}
		case lineValue:
			switch {
			case c == '\r':
				f.ls = lineCR
			case c == '\n':
				return i, lineAt, reasonBareLF, false
			default:
				return i, lineAt, reasonCTL, false
			}
		case lineCR:
			if c != '\n' {
				return i, lineAt, reasonBareCR, false
			}
			i++
			f.n++
			var line []byte
			if lineAt >= 0 {
				line = p[lineAt:i]
			} else {
				f.line = append(f.line, p[:i]...)
				line = f.line
			}
			line = line[:len(line)-2]
			reason, done, ended := f.endLine(line)
			if reason != "" {
				return i, lineAt, reason, ended
			}
			f.line, f.lineLen, f.ls, f.reqLine = f.line[:0], 0, lineStart, false
			lineAt = i
			if done {
				return i, lineAt, "", false
			}
			continue
		}
		i++
		f.n++
		f.lineLen++
	}
	return i, lineAt, "", false
}

// endLine takes a complete line (without its CRLF). It returns why the
// head is refused, if it is, whether the head or trailer section ended,
// and whether the refusal is of a whole head. When a head ends well it is
// emitted and its body set up.
func (f *wireFramer) endLine(line []byte) (reason string, done, ended bool) {
	if f.state == wireTrailer {
		if len(line) == 0 {
			f.state = wireIdle
			return "", true, false
		}
		return "", false, false
	}
	if f.reqLine {
		return f.requestLine(line), false, false
	}
	if len(line) == 0 {
		return f.endHead()
	}
	if f.hd.preface {
		return reasonPreface, false, false
	}
	name, value := line[:f.mark], trimOWS(line[f.mark+1:])
	if f.hd.names > 0 {
		f.order.Write(comma)
	}
	f.order.Write(name)
	f.hd.names++
	switch {
	case asciiEqualFold(name, "Content-Length"):
		f.hd.cl++
		v, ok := parseDecimal(value)
		f.hd.clValue, f.hd.clBad = v, f.hd.clBad || !ok
	case asciiEqualFold(name, "Transfer-Encoding"):
		f.hd.te++
		f.hd.teChunked = asciiEqualFold(value, "chunked")
	}
	return "", false, false
}

var comma = []byte{','}

// requestLine checks a request line (method SP request-target SP version,
// its characters already checked) and notes what the head needs of it.
func (f *wireFramer) requestLine(line []byte) string {
	f.hd.target = fnv(line[:f.mark2])
	switch string(line[f.mark2+1:]) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		f.hd.http10 = true
	case "HTTP/2.0":
		if f.h2c && f.hd.first && string(line) == "PRI * HTTP/2.0" {
			f.hd.preface = true
			return ""
		}
		return reasonVersion
	default:
		return reasonVersion
	}
	return ""
}

// endHead judges a whole head's framing and, when it is clean, emits it
// and sets up its body.
func (f *wireFramer) endHead() (reason string, done, ended bool) {
	hd := &f.hd
	if hd.preface {
		f.state, f.prefaceN = wirePreface, 0
		return "", true, false
	}
	switch {
	case hd.te > 0 && hd.http10:
		// RFC 9112 §6.1: the framing of an HTTP/1.0 message with a
		// Transfer-Encoding is faulty.
		return reasonTE10, false, true
	case hd.te > 0 && hd.cl > 0:
		return reasonCLWithTE, false, true
	case hd.te > 1 || hd.te == 1 && !hd.teChunked:
		return reasonTEOther, false, true
	case hd.cl > 1:
		return reasonCLRepeated, false, true
	case hd.clBad:
		return reasonCLMalformed, false, true
	}
	if !f.emit(Wire{HeaderOrder: f.headerOrder(), target: hd.target}) {
		return reasonTooManyPending, false, true
	}
	f.clean++
	switch {
	case hd.te > 0:
		f.state, f.n, f.chunk, f.digits, f.remain = wireChunkSize, 0, chunkDigits, 0, 0
	case hd.clValue > 0:
		f.state, f.remain = wireBody, hd.clValue
	default:
		f.state = wireIdle
	}
	return "", true, false
}

// refuse emits a refusal for the head being read and cuts the connection.
func (f *wireFramer) refuse(reason string) {
	f.emit(Wire{HeaderOrder: f.headerOrder(), Ambiguous: reason, target: f.hd.target})
	f.cut(f.clean)
}

// stopBody cuts the connection inside a body it cannot follow: net/http
// sees p[:i] and then the end of the stream.
func (f *wireFramer) stopBody(i int) (int, string) {
	f.cut(f.clean - 1)
	return i, ""
}

// cut stops the framing: nothing more is handed over once the first
// before requests have been served.
func (f *wireFramer) cut(before int) {
	f.state, f.cutReq = wireCut, before
	f.line = nil
}

func (f *wireFramer) headerOrder() string {
	if f.order == nil {
		f.order = sha256.New()
	}
	sum := f.order.Sum(f.sum[:0])
	var b [3 + 16]byte
	copy(b[:], "h1:")
	hex.Encode(b[3:], sum[:8])
	// A client sends its headers in the same order request after request:
	// the connection's last fingerprint is reused, not allocated again.
	if string(b[:]) != f.lastOrder {
		f.lastOrder = string(b[:])
	}
	return f.lastOrder
}

// chunkLine reads a chunk-size line from p[i:]: 1 to 16 hex digits, then
// either a chunk extension (';' and bytes other than controls) or optional
// whitespace, then CRLF, as net/http reads it. It returns where it stopped and false if the line is refused.
func (f *wireFramer) chunkLine(p []byte, i int) (int, bool) {
	for ; i < len(p); i++ {
		c := p[i]
		if f.n++; f.n >= maxChunkLine {
			return i, false
		}
		switch f.chunk {
		case chunkDigits:
			switch d := hexDigit(c); {
			case d >= 0 && f.digits < 16:
				f.remain = f.remain<<4 | uint64(d)
				f.digits++
				continue
			case d >= 0 || f.digits == 0:
				return i, false
			}
			switch c {
			case ';':
				f.chunk = chunkExt
			case ' ', '\t':
				f.chunk = chunkSpace
			case '\r':
				f.chunk = chunkCR
			default:
				return i, false
			}
		case chunkSpace:
			switch c {
			case ' ', '\t':
			case '\r':
				f.chunk = chunkCR
			default:
				return i, false
			}
		case chunkExt:
			switch {
			case c == '\r':
				f.chunk = chunkCR
			case c == '\n' || c < ' ' && c != '\t' || c == 0x7f:
				return i, false
			}
		case chunkCR:
			if c != '\n' {
				return i, false
			}
			if f.remain == 0 {
				f.state, f.ls, f.n, f.lineLen = wireTrailer, lineStart, 0, 0
				f.line = f.line[:0]
			} else {
				f.state = wireChunkData
			}
			return i + 1, true
		}
	}
	return i, true
}

func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// parseDecimal parses a Content-Length value: 1*DIGIT, at most 2⁶³-1.
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, n <= 1<<63-1
}

func fnv(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// Byte classes of RFC 9110 and 9112.
var (
	// isToken: tchar, the characters of a method or a field name.
	isToken = byteClass(func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c != 0 && c < 0x80 && stringsContains("!#$%&'*+-.^_`|~", c)
	})
	// isTarget: a request-target's bytes; net/http judges the URI itself.
	isTarget = byteClass(func(c byte) bool { return c > ' ' && c != 0x7f })
	// isValue: field-content, with the spaces and tabs between.
	isValue = byteClass(func(c byte) bool { return c == '\t' || c >= ' ' && c != 0x7f })
)

func byteClass(in func(byte) bool) (t [256]bool) {
	for c := range 256 {
		t[c] = in(byte(c))
	}
	return t
}

func stringsContains(s string, c byte) bool {
	for i := range len(s) {
		if s[i] == c {
			return true
		}
	}
	return false
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
