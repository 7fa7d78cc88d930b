package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// Importing turns requests recorded by other tools (web-server access
// logs, HAR files, raw HTTP) into a capture file of events, the way the
// proxy would have recorded each request: proxy.OfflineRecorder applies
// the proxy's route templates, query reading and client identity rules
// from the same proxy config. What a format does not carry is left empty
// in the events and named in the summary (ImportSummary.Missing). Input
// that does not parse is counted and reported with its file and line,
// never skipped silently. The events are written in event-time order,
// across all files, whatever order the files and lines came in.
//
// An import holds every event in memory until it is written (about 1 KB
// a request), so that lines and files out of time order come out sorted.

// ImportConfig configures Import.
type ImportConfig struct {
	// Format names the input format (Formats lists them).
	Format string
	// Proxy is the proxy config whose rules name APIs and principals:
	// routes, trusted_proxies, api_key_header, capture_query_values.
	Proxy proxy.Config
	// Partitions is the number of event partitions (nats.partitions).
	Partitions int
	// LogFormat is an nginx log_format string, for the "nginx" format;
	// "" or "combined" is nginx's predefined combined format.
	LogFormat string
	// Fields maps event fields to the keys of a JSON-lines record, for the
	// "json" format; unset fields take the usual names (JSONFields).
	Fields map[string]string
	// Start and Interval time the requests of formats that carry no
	// timestamp (raw-http): the n-th request is at Start + n×Interval.
	Start    time.Time
	Interval time.Duration
	// Report, if set, receives one line per input that does not parse
	// ("file:line: reason"), up to MaxReported; the summary counts all.
	Report io.Writer
}

// MaxReported bounds the lines an import writes to ImportConfig.Report;
// the summary counts the rest.
const MaxReported = 1000

// maxLine is the longest input line read; a longer one is reported and
// skipped to its end.
const maxLine = 1 << 20

// DefaultImportConfig returns the defaults: the proxy's default config,
// 8 partitions, raw-http requests one second apart from 2010-01-01 UTC.
func DefaultImportConfig() ImportConfig {
	return ImportConfig{Proxy: proxy.DefaultConfig(), Partitions: 8,
		Start: time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC), Interval: time.Second}
}

// Fields of an event that a format may lack; ImportSummary.Missing counts
// them by these names.
const (
	fieldTime = 1 << iota
	fieldClientIP
	fieldHost
	fieldStatus
	fieldResponseBytes
	fieldRequestBytes
	fieldDuration
	fieldUserAgent
	fieldReferer
	fieldHeaders
	fieldHeaderOrder
	numFields = iota
)

var fieldNames = [numFields]string{"time", "client_ip", "host", "status", "response_bytes", "request_bytes",
	"duration", "user_agent", "referer", "headers", "header_fingerprint"}

// logRequest is one request as an input format holds it, before the
// proxy's rules turn it into an event.
type logRequest struct {
	line int // where it starts, from 1
	// t is the request's time and res the resolution of the format's
	// timestamps (time.Second for an access log's [10/Oct/2000:13:55:36
	// -0700]); requests of one file at the same time are spread evenly
	// over [t, t+res) in the order they came, so that ids and order are
	// deterministic.
	t      time.Time
	res    time.Duration
	method string
	target string // the request-target as sent: origin or absolute form
	host   string
	peer   string      // the client address as recorded
	header http.Header // as recorded, nil if none
	// ua, referer and xff are what access logs record of the headers,
	// used when header is nil.
	ua, referer, xff string
	hdrs             [][2]string // other headers a log recorded, name and value
	// order is the header names of an HTTP/1.x request as sent, case
	// kept, when the format records them: the header-order fingerprint.
	order []string
	// body is the request's body where the format records it, for the
	// body parameters proxy.capture asks for (its Content-Type in header).
	body   []byte
	status int
	// reqBytes and respBytes are byte counts; duration and upstream
	// the request's and the upstream's time.
	reqBytes, respBytes int64
	duration, upstream  time.Duration
	has                 int // field… bits of what the format recorded
}

// importer reads one input format.
type importer interface {
	// parse reads in, named name, and calls add for every request and
	// bad for every line or entry that does not parse. It returns an error
	// only when the rest of the input cannot be read.
	parse(in io.Reader, name string, add func(*logRequest), bad func(line int, err error)) error
}

// formats is the registry: format name → constructor.
var formats = map[string]func(ImportConfig) (importer, error){
	"combined": func(ImportConfig) (importer, error) { return newLogFormat(apacheCombined) },
	"nginx": func(c ImportConfig) (importer, error) {
		if c.LogFormat == "" || c.LogFormat == "combined" {
			return newLogFormat(nginxCombined)
		}
		return newLogFormat(c.LogFormat)
	},
	"json":     func(c ImportConfig) (importer, error) { return newJSONFormat(c.Fields) },
	"har":      func(ImportConfig) (importer, error) { return harFormat{}, nil },
	"raw-http": func(ImportConfig) (importer, error) { return rawHTTPFormat{}, nil },
}

// Formats returns the names of the formats Import reads, sorted.
func Formats() []string {
	out := make([]string, 0, len(formats))
	for n := range formats {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ImportSummary is what an import read, wrote and could not read.
type ImportSummary struct {
	Files    int
	Requests int // read from the inputs
	Written  int // events written
	// Bad counts the lines or entries that did not parse; Reported are
	// the first MaxReported of them, "file:line: reason".
	Bad      int
	Reported []string
	// Refused counts the requests, among Requests and in Bad, that parsed
	// but that the proxy would not have recorded: a request line over
	// proxy.max_header_bytes, a target that is no path.
	Refused int
	// Missing counts, by field name, the events whose input did not
	// record it (left empty in the event).
	Missing map[string]int
	// NotUTF8Paths counts paths with bytes that are not UTF-8 (written as
	// %XX in the events); Lenient counts request-targets the proxy's HTTP
	// server would have refused (a bad %-escape, a control byte), kept as
	// they were sent.
	NotUTF8Paths int
	Lenient      int
	// Synthesized counts the events whose time was made up from Start and
	// Interval because the input had none.
	Synthesized int
	// FileErrors are the inputs that could not be read to their end (a
	// truncated gzip stream), with what was read before.
	FileErrors []string
}

// Input is one file to import.
type Input struct {
	Name string // in reports: file:line
	R    io.Reader
}

// Import reads inputs in cfg.Format and writes their requests, in time
// order, as unlabelled events to w. gzip input is read directly (found by
// its magic bytes). It fails only on a bad config or a write error: input
// that does not parse is in the summary.
func Import(cfg ImportConfig, inputs []Input, w *Writer) (*ImportSummary, error) {
	mk, ok := formats[cfg.Format]
	if !ok {
		return nil, fmt.Errorf("import: unknown format %q, want one of %s", cfg.Format, strings.Join(Formats(), ", "))
	}
	if cfg.Partitions < 1 {
		return nil, fmt.Errorf("import: partitions %d, want at least 1", cfg.Partitions)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	imp, err := mk(cfg)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	rec, err := proxy.NewOfflineRecorder(cfg.Proxy)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	b := &builder{cfg: cfg, rec: rec, sum: &ImportSummary{Missing: map[string]int{}}}
	for i, in := range inputs {
		b.sum.Files++
		b.file, b.name, b.base = i, in.Name, filepath.Base(in.Name)
		r, err := decompress(in.R)
		if err != nil {
			b.fileError(err)
			continue
		}
		err = imp.parse(r, in.Name, b.add, b.bad)
		b.flushRun()
		if err != nil {
			b.fileError(err)
		}
	}
	n, err := b.col.WriteTo(w)
	b.sum.Written = n
	if err != nil {
		return b.sum, err
	}
	return b.sum, w.Flush()
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// decompress returns r, or a gzip reader over it when it starts with the
// gzip magic bytes.
func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading gzip header: %w", err)
		}
		return zr, nil
	}
	return br, nil
}

// builder turns logRequests into events and keeps the summary.
type builder struct {
	cfg   ImportConfig
	rec   *proxy.OfflineRecorder
	sum   *ImportSummary
	file  int
	name  string
	col   Collector
	base  string // the file's base name, in event ids
	slots [3][]string
	// req and ev are reused: an event is encoded before the next is built.
	req http.Request
	ev  event.RequestEvent
	run []logRequest // requests of the current file at one time
	n   int          // requests so far, for synthesized times
	hdr http.Header  // scratch header for formats without one
}

func (b *builder) bad(line int, err error) {
	b.sum.Bad++
	msg := fmt.Sprintf("%s:%d: %v", b.name, line, err)
	if len(b.sum.Reported) < MaxReported {
		b.sum.Reported = append(b.sum.Reported, msg)
		if b.cfg.Report != nil {
			fmt.Fprintln(b.cfg.Report, msg)
		}
	}
}

// refuse reports a request that parsed but that the proxy would not have
// recorded (or a capture cannot hold).
func (b *builder) refuse(line int, err error) {
	b.sum.Refused++
	b.bad(line, err)
}

func (b *builder) fileError(err error) {
	msg := fmt.Sprintf("%s: %v", b.name, err)
	b.sum.FileErrors = append(b.sum.FileErrors, msg)
	if b.cfg.Report != nil {
		fmt.Fprintln(b.cfg.Report, msg)
	}
}

// add takes one request. Requests at the same time are held until the
// run ends, to spread them over the timestamp's resolution.
func (b *builder) add(lr *logRequest) {
	b.sum.Requests++
	if lr.has&fieldTime == 0 {
		lr.t = b.cfg.Start.Add(time.Duration(b.n) * b.cfg.Interval)
		lr.res = 0
		b.sum.Synthesized++
	}
	b.n++
	if len(b.run) > 0 && (!b.run[0].t.Equal(lr.t) || b.run[0].res != lr.res) {
		b.flushRun()
	}
	b.run = append(b.run, *lr)
	if lr.res <= 1 {
		b.flushRun()
	}
}

func (b *builder) flushRun() {
	n := len(b.run)
	for k := range b.run {
		lr := &b.run[k]
		t := lr.t
		if n > 1 && lr.res > 1 {
			t = t.Add(time.Duration(int64(lr.res) * int64(k) / int64(n)))
		}
		ev := b.event(lr, t)
		if ev == nil {
			continue
		}
		if err := b.col.Add(ev, int32(b.file), int32(lr.line)); err != nil {
			b.refuse(lr.line, err)
		}
	}
	clear(b.run)
	b.run = b.run[:0]
}

// event builds the event of lr at t through the proxy's recorder, in
// b.ev: it is valid until the next call.
func (b *builder) event(lr *logRequest, t time.Time) *event.RequestEvent {
	if n := len(lr.method) + len(lr.target); b.cfg.Proxy.MaxHeaderBytes > 0 && n > b.cfg.Proxy.MaxHeaderBytes {
		b.refuse(lr.line, fmt.Errorf("request line of %d bytes, over proxy.max_header_bytes %d: the proxy's server refuses it",
			n, b.cfg.Proxy.MaxHeaderBytes))
		return nil
	}
	u, lenient := parseTarget(lr.method, lr.target)
	if u == nil {
		b.refuse(lr.line, fmt.Errorf("request-target %q: not a path or URL", event.Clip(event.ValidUTF8(lr.target), 64)))
		return nil
	}
	host := lr.host
	if host == "" && u.Host != "" {
		host = u.Host
		lr.has |= fieldHost
	}
	h := lr.header
	if h == nil {
		// The recorder reads the header only while it builds the event.
		if b.hdr == nil {
			b.hdr = http.Header{}
		}
		h = b.hdr
		clear(h)
		for i, kv := range [...]struct{ k, v string }{{"User-Agent", lr.ua}, {"Referer", lr.referer}, {"X-Forwarded-For", lr.xff}} {
			if kv.v != "" && kv.v != "-" {
				if b.slots[i] == nil {
					b.slots[i] = make([]string, 1)
				}
				b.slots[i][0] = kv.v
				h[kv.k] = b.slots[i]
			}
		}
		for _, kv := range lr.hdrs {
			h.Add(kv[0], kv[1])
		}
	}
	if h.Get("User-Agent") != "" {
		lr.has |= fieldUserAgent
	}
	if h.Get("Referer") != "" {
		lr.has |= fieldReferer
	}
	r := &b.req
	*r = http.Request{Method: lr.method, URL: u, Host: host, RemoteAddr: lr.peer, Header: h, ContentLength: lr.reqBytes}
	id := event.HashID(t, b.base, lineString(lr.line))
	ev := &b.ev
	if err := b.rec.Record(ev, r, t, id, b.cfg.Partitions); err != nil {
		b.refuse(lr.line, err)
		return nil
	}
	if lenient {
		b.sum.Lenient++
	}
	if !utf8.ValidString(u.Path) {
		b.sum.NotUTF8Paths++
	}
	if len(lr.body) > 0 {
		b.rec.RecordBody(ev, h.Get("Content-Type"), lr.body)
	}
	if len(lr.order) > 0 {
		ev.HeaderFingerprint = proxy.HeaderOrderFingerprint(lr.order)
		lr.has |= fieldHeaderOrder
	}
	ev.Decision = event.Decision_DECISION_ALLOW // it reached the server that logged it
	ev.Status = uint32(max(lr.status, 0))
	ev.ResponseBytes = max(lr.respBytes, 0)
	ev.DurationNanos = max(int64(lr.duration), 0)
	ev.UpstreamLatencyNanos = max(int64(lr.upstream), 0)
	if lr.peer != "" && len(ev.ClientIp) > 0 {
		lr.has |= fieldClientIP
	}
	for i := range numFields {
		if lr.has&(1<<i) == 0 {
			b.sum.Missing[fieldNames[i]]++
		}
	}
	return ev
}

func lineString(n int) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(buf[i:])
}

// parseTarget reads a request-target as the proxy's HTTP server does
// (url.ParseRequestURI). One that server refuses, a bad %-escape or a
// control byte, is kept leniently as it was sent (lenient is true): an
// access log shows the server that wrote it took it.
func parseTarget(method, target string) (u *url.URL, lenient bool) {
	if method == http.MethodConnect && !strings.HasPrefix(target, "/") {
		return &url.URL{Host: target}, false // authority form
	}
	if target == "*" {
		return &url.URL{Path: "*"}, false
	}
	if u, err := url.ParseRequestURI(target); err == nil {
		return u, false
	}
	if target == "" {
		return nil, false
	}
	rest := target
	u = &url.URL{}
	if i := strings.Index(rest, "://"); i > 0 && !strings.Contains(rest[:i], "/") {
		u.Scheme = rest[:i]
		rest = rest[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 {
			j = len(rest)
		}
		u.Host, rest = rest[:j], rest[j:]
	}
	path, query, _ := strings.Cut(rest, "?")
	if path == "" {
		path = "/"
	}
	if path[0] != '/' {
		return nil, false
	}
	u.Path, u.RawQuery = path, query
	return u, true
}

// lineReader reads lines of at most maxLine bytes, numbering them.
type lineReader struct {
	r    *bufio.Reader
	line int
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 1<<16)}
}

// errLongLine is a line over maxLine bytes.
var errLongLine = fmt.Errorf("line longer than %d bytes", maxLine)

// next returns the next line without its line ending, valid until the
// next call, or io.EOF. A line over maxLine bytes gives errLongLine and is
// skipped; another read error ends the input.
func (l *lineReader) next() ([]byte, error) {
	var long []byte
	for {
		frag, err := l.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if long == nil {
				long = make([]byte, 0, 2*len(frag))
			}
			if len(long)+len(frag) > maxLine {
				// Skip to the end of the line.
				for err == bufio.ErrBufferFull {
					_, err = l.r.ReadSlice('\n')
				}
				l.line++
				if err != nil && err != io.EOF {
					return nil, err
				}
				return nil, errLongLine
			}
			long = append(long, frag...)
			continue
		}
		if err == io.EOF && len(frag) == 0 && len(long) == 0 {
			return nil, io.EOF
		}
		if err != nil && err != io.EOF {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("after line %d: input truncated: %w", l.line, err)
			}
			return nil, fmt.Errorf("after line %d: %w", l.line, err)
		}
		l.line++
		if long != nil {
			frag = append(long, frag...)
			if len(frag) > maxLine+2 {
				return nil, errLongLine
			}
		}
		frag = bytes.TrimSuffix(frag, []byte{'\n'})
		return bytes.TrimSuffix(frag, []byte{'\r'}), nil
	}
}

// eachLine calls f on every line of in; bad gets the long ones.
func eachLine(in io.Reader, f func(n int, line []byte), bad func(int, error)) error {
	lr := newLineReader(in)
	for {
		line, err := lr.next()
		switch {
		case err == io.EOF:
			return nil
		case err == errLongLine:
			bad(lr.line, err)
			continue
		case err != nil:
			return err
		}
		f(lr.line, line)
	}
}

// missingList returns the fields of s.Missing by name, "name (n)".
func (s *ImportSummary) missingList() []string {
	names := make([]string, 0, len(s.Missing))
	for n := range s.Missing {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		c := s.Missing[n]
		if c == s.Written {
			out = append(out, n+" (all)")
		} else {
			out = append(out, fmt.Sprintf("%s (%d)", n, c))
		}
	}
	return out
}

// Inputs is the number of lines (entries, requests) read, parsed or not.
func (s *ImportSummary) Inputs() int { return s.Requests + s.Bad - s.Refused }

// String is the summary as the command prints it.
func (s *ImportSummary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d files, %d requests read, %d events written, %d not parsed or refused", s.Files, s.Requests, s.Written, s.Bad)
	if s.Bad > len(s.Reported) {
		fmt.Fprintf(&b, " (first %d reported)", len(s.Reported))
	}
	b.WriteString("\n")
	if len(s.Missing) > 0 {
		fmt.Fprintf(&b, "left empty, not in the input: %s\n", strings.Join(s.missingList(), ", "))
	}
	if s.Synthesized > 0 {
		fmt.Fprintf(&b, "times made up (--start, --interval) for %d requests without one\n", s.Synthesized)
	}
	if s.NotUTF8Paths > 0 {
		fmt.Fprintf(&b, "%d paths with bytes that are not UTF-8 (written as %%XX)\n", s.NotUTF8Paths)
	}
	if s.Lenient > 0 {
		fmt.Fprintf(&b, "%d request-targets the proxy's HTTP server would refuse (bad %%-escape, control byte), kept as sent\n", s.Lenient)
	}
	for _, e := range s.FileErrors {
		fmt.Fprintf(&b, "input error: %s\n", e)
	}
	return b.String()
}
