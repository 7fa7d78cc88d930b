package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/): a browser's
// or a proxy's record of requests. An entry gives the request's method,
// URL, headers (so API keys and bearer tokens name the principal as the
// proxy would), body size, the response's status and size, and timings.
// It has no client IP (the browser is the client). Entries are read one
// at a time from log.entries; one that does not decode is reported by its
// index and line, and the next is read.

type harEntry struct {
	StartedDateTime string   `json:"startedDateTime"`
	Time            *float64 `json:"time"`
	Request         struct {
		Method      string    `json:"method"`
		URL         string    `json:"url"`
		HTTPVersion string    `json:"httpVersion"`
		Headers     []harPair `json:"headers"`
		HeadersSize int64     `json:"headersSize"`
		BodySize    int64     `json:"bodySize"`
		PostData    *struct {
			MimeType string `json:"mimeType"`
			Text     string `json:"text"`
		} `json:"postData"`
	} `json:"request"`
	Response struct {
		Status   int   `json:"status"`
		BodySize int64 `json:"bodySize"`
		Content  struct {
			Size int64 `json:"size"`
		} `json:"content"`
	} `json:"response"`
	Timings *struct {
		Wait *float64 `json:"wait"`
	} `json:"timings"`
	ServerIPAddress string `json:"serverIPAddress"`
	// ClientIPAddress is not in HAR 1.2; some proxies add it, as
	// "_clientIPAddress" (custom fields start with "_").
	ClientIPAddress string `json:"_clientIPAddress"`
}

type harPair struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type harFormat struct{}

// lineCounter counts the newlines read through it, for positions.
type lineCounter struct {
	r     io.Reader
	lines []int64 // byte offset of each newline
	off   int64
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i := 0; i < n; {
		j := bytes.IndexByte(p[i:n], '\n')
		if j < 0 {
			break
		}
		c.lines = append(c.lines, c.off+int64(i+j))
		i += j + 1
	}
	c.off += int64(n)
	return n, err
}

// lineAt returns the line (from 1) of byte offset off.
func (c *lineCounter) lineAt(off int64) int {
	lo, hi := 0, len(c.lines)
	for lo < hi {
		m := (lo + hi) / 2
		if c.lines[m] < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo + 1
}

func (harFormat) parse(in io.Reader, _ string, add func(*logRequest), bad func(int, error)) error {
	lc := &lineCounter{r: bufio.NewReaderSize(in, 1<<16)}
	d := json.NewDecoder(lc)
	// Walk to log.entries.
	if err := harSeek(d, "log"); err != nil {
		return fmt.Errorf("line %d: %w", lc.lineAt(d.InputOffset()), err)
	}
	if err := harSeek(d, "entries"); err != nil {
		return fmt.Errorf("line %d: %w", lc.lineAt(d.InputOffset()), err)
	}
	if tok, err := d.Token(); err != nil || tok != json.Delim('[') {
		return fmt.Errorf("line %d: log.entries is not an array", lc.lineAt(d.InputOffset()))
	}
	for i := 0; d.More(); i++ {
		line := lc.lineAt(d.InputOffset() + 1)
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			// The document itself is broken: nothing after can be read.
			return fmt.Errorf("line %d: entry %d: %w", line, i, err)
		}
		var e harEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			bad(line, fmt.Errorf("entry %d: %w", i, err))
			continue
		}
		lr := logRequest{line: line}
		if err := harRequest(&e, &lr); err != nil {
			bad(line, fmt.Errorf("entry %d: %w", i, err))
			continue
		}
		add(&lr)
	}
	return nil
}

// harSeek reads tokens of the object d is at (or about to open) until the
// value of key, skipping other members.
func harSeek(d *json.Decoder, key string) error {
	tok, err := d.Token()
	if err != nil {
		return fmt.Errorf("reading HAR: %w", err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("reading HAR: want an object holding %q", key)
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return fmt.Errorf("reading HAR: %w", err)
		}
		if tok == key {
			return nil
		}
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return fmt.Errorf("reading HAR: %w", err)
		}
	}
	return fmt.Errorf("reading HAR: no %q", key)
}

// harRequest reads one entry into lr.
func harRequest(e *harEntry, lr *logRequest) error {
	rq := &e.Request
	if !isToken(rq.Method) {
		return fmt.Errorf("request.method %q: not a method", clipText(rq.Method))
	}
	u, err := url.Parse(rq.URL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("request.url %q: not an absolute URL", clipText(rq.URL))
	}
	lr.method = rq.Method
	lr.target = u.RequestURI()
	lr.host = u.Host
	lr.has |= fieldHost
	if e.StartedDateTime != "" {
		t, err := time.Parse(time.RFC3339Nano, e.StartedDateTime)
		if err != nil {
			return fmt.Errorf("startedDateTime %q: %w", clipText(e.StartedDateTime), err)
		}
		lr.t, lr.res, lr.has = t, time.Millisecond, lr.has|fieldTime
	}
	if e.Time != nil && *e.Time >= 0 {
		lr.duration, lr.has = time.Duration(*e.Time*float64(time.Millisecond)), lr.has|fieldDuration
	}
	if e.Timings != nil && e.Timings.Wait != nil && *e.Timings.Wait >= 0 {
		lr.upstream = time.Duration(*e.Timings.Wait * float64(time.Millisecond))
	}
	if len(rq.Headers) > 0 {
		lr.header = make(http.Header, len(rq.Headers))
		for _, h := range rq.Headers {
			if h.Name == "" || h.Name[0] == ':' { // HTTP/2 pseudo-headers
				if h.Name == ":authority" && h.Value != "" {
					lr.host = h.Value
				}
				continue
			}
			lr.header.Add(h.Name, h.Value)
			if strings.HasPrefix(strings.ToUpper(rq.HTTPVersion), "HTTP/1") {
				// The order of an HTTP/1.x request as sent; an HTTP/2
				// one's names are lower case, its order not the client's.
				lr.order = append(lr.order, h.Name)
			}
		}
		if hh := lr.header.Get("Host"); hh != "" {
			lr.host = hh
		}
		lr.has |= fieldHeaders
	}
	switch {
	case rq.BodySize > 0:
		lr.reqBytes, lr.has = rq.BodySize, lr.has|fieldRequestBytes
	case rq.BodySize == 0:
		lr.has |= fieldRequestBytes
	case rq.PostData != nil:
		lr.reqBytes, lr.has = int64(len(rq.PostData.Text)), lr.has|fieldRequestBytes
	}
	if e.Response.Status > 0 {
		lr.status, lr.has = min(e.Response.Status, 999), lr.has|fieldStatus
	}
	switch {
	case e.Response.BodySize >= 0:
		lr.respBytes, lr.has = e.Response.BodySize, lr.has|fieldResponseBytes
	case e.Response.Content.Size >= 0:
		lr.respBytes, lr.has = e.Response.Content.Size, lr.has|fieldResponseBytes
	}
	if rq.PostData != nil && rq.PostData.Text != "" {
		lr.body = []byte(rq.PostData.Text)
		if lr.header == nil {
			lr.header = http.Header{}
		}
		if lr.header.Get("Content-Type") == "" && rq.PostData.MimeType != "" {
			lr.header.Set("Content-Type", rq.PostData.MimeType)
		}
	}
	lr.peer = e.ClientIPAddress
	if lr.method == "" {
		return errors.New("no method")
	}
	return nil
}
