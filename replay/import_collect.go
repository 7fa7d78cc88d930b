package replay

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/apiguard/apiguard/event"
)

// Collector holds events, encoded, and writes them in event-time order:
// importers and captures read events in the order their sources hold
// them (log lines written at completion, several files, partitions
// interleaved), and a capture file is in event-time order. Events are kept
// back to back in chunks that are never copied, about as many bytes as
// their encoding, so that holding millions costs the garbage collector
// little. The zero value is ready; it is not safe for concurrent use.
type Collector struct {
	out    []collected
	chunks [][]byte
}

// collected is one encoded event and its sort key.
type collected struct {
	t             int64
	chunk, off, n int32
	k1, k2        int32
}

// chunkSize is the size of a Collector's chunks.
const chunkSize = 4 << 20

// Len returns the number of events held.
func (c *Collector) Len() int { return len(c.out) }

// Add encodes ev and holds it. Events of the same time are written in
// the order of (k1, k2), then of their adding (for an importer: file and
// line). An event over the capture's size limit is an error.
func (c *Collector) Add(ev *event.RequestEvent, k1, k2 int32) error {
	size := ev.SizeVT()
	if size > maxEvent {
		return fmt.Errorf("event of %d bytes, over the capture's limit of %d", size, maxEvent)
	}
	last := len(c.chunks) - 1
	if last < 0 || cap(c.chunks[last])-len(c.chunks[last]) < size {
		c.chunks = append(c.chunks, make([]byte, 0, max(size, chunkSize)))
		last++
	}
	buf := c.chunks[last]
	off := len(buf)
	buf, err := event.AppendMarshal(buf, ev)
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", ev.Id, err)
	}
	c.chunks[last] = buf
	c.out = append(c.out, collected{t: ev.TimeUnixNano, chunk: int32(last), off: int32(off), n: int32(len(buf) - off), k1: k1, k2: k2})
	return nil
}

// WriteTo writes the events held to w, unlabelled, in event-time order,
// flushes w, and returns how many it wrote.
func (c *Collector) WriteTo(w *Writer) (int, error) {
	slices.SortStableFunc(c.out, func(x, y collected) int {
		switch {
		case x.t != y.t:
			return cmpInt(x.t, y.t)
		case x.k1 != y.k1:
			return int(x.k1) - int(y.k1)
		}
		return int(x.k2) - int(y.k2)
	})
	for i, e := range c.out {
		if err := w.writeEncoded(c.chunks[e.chunk][e.off : e.off+e.n]); err != nil {
			return i, err
		}
	}
	return len(c.out), w.Flush()
}

// writeEncoded appends an unlabelled record whose event is already
// encoded (event.AppendMarshal), in the layout Writer.Write writes.
func (w *Writer) writeEncoded(ev []byte) error {
	w.buf = binary.AppendUvarint(append(w.buf[:0], 0), uint64(len(ev)))
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("writing capture record %d: %w", w.n, err)
	}
	if _, err := w.w.Write(ev); err != nil {
		return fmt.Errorf("writing capture record %d: %w", w.n, err)
	}
	w.n++
	return nil
}

// CaptureFilter selects the events of a capture from the stream or from
// ClickHouse. The zero value keeps every event.
type CaptureFilter struct {
	// Since and Until bound the event time: Since ≤ t < Until; a zero
	// Until has no bound.
	Since, Until time.Time
	// API keeps only the events of this API (route template, method
	// included: "GET /orders/{id}"); "" keeps all.
	API string
	// Principal keeps only the events of this principal, "kind:value"
	// (event.PrincipalOf): "ip:203.0.113.7", "key:k1"; "" keeps all.
	Principal string
}

// Keep reports whether ev passes the filter.
func (f *CaptureFilter) Keep(ev *event.RequestEvent) bool {
	if ev.TimeUnixNano < f.Since.UnixNano() || !f.Until.IsZero() && ev.TimeUnixNano >= f.Until.UnixNano() {
		return false
	}
	if f.API != "" && ev.Api != f.API {
		return false
	}
	if f.Principal != "" {
		kind, value := event.PrincipalOf(ev)
		if kind+":"+value != f.Principal {
			return false
		}
	}
	return true
}
