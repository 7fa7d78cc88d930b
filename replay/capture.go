// Package replay provides capture files of labelled request events, a
// generator of labelled synthetic traffic, and the offline backtest that
// runs the detectors over a capture on event time and scores them against
// the labels.
package replay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apiguard/apiguard/event"
)

// Magic opens every capture file; the digit is the format version.
const Magic = "APIGUARD-CAPTURE 1\n"

// Record limits: a longer label or event is a corrupt file, not data.
const (
	maxLabel = 256
	maxEvent = 1 << 20
)

// A capture file is Magic, then records until the end of the file. A
// record is a uvarint label length, the label (empty for normal traffic,
// else "<kind>/<campaign>"), a uvarint event length and the event in the
// wire encoding (event.Marshal).

// Writer writes a capture file.
type Writer struct {
	w   *bufio.Writer
	buf []byte
	n   int
}

// NewWriter writes the header to w and returns a Writer. Call Flush at the end.
func NewWriter(w io.Writer) (*Writer, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := bw.WriteString(Magic); err != nil {
		return nil, fmt.Errorf("writing capture header: %w", err)
	}
	return &Writer{w: bw}, nil
}

// Write appends one event with its label.
func (w *Writer) Write(ev *event.RequestEvent, label string) error {
	if len(label) > maxLabel {
		return fmt.Errorf("capture record %d: label of %d bytes, limit %d", w.n, len(label), maxLabel)
	}
	if ev.Schema == 0 {
		ev.Schema = event.SchemaVersion
	}
	var err error
	w.buf = binary.AppendUvarint(w.buf[:0], uint64(len(label)))
	w.buf = append(w.buf, label...)
	w.buf = binary.AppendUvarint(w.buf, uint64(ev.SizeVT()))
	if w.buf, err = event.AppendMarshal(w.buf, ev); err != nil {
		return fmt.Errorf("capture record %d: %w", w.n, err)
	}
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("writing capture record %d: %w", w.n, err)
	}
	w.n++
	return nil
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("writing capture: %w", err)
	}
	return nil
}

// Reader reads a capture file.
type Reader struct {
	r      *bufio.Reader
	name   string
	n      int   // records read
	offset int64 // bytes read
}

// NewReader checks the header and returns a Reader; name appears in errors.
func NewReader(r io.Reader, name string) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, head); err != nil || string(head) != Magic {
		return nil, fmt.Errorf("%s: not an apiguard capture file (want header %q)", name, Magic[:len(Magic)-1])
	}
	return &Reader{r: br, name: name, offset: int64(len(Magic))}, nil
}

// Next returns the next event and its label, or io.EOF after the last.
// A truncated or corrupt record is an error naming its number and offset.
// The event is decoded into ev, which must not be reused while the label
// or the event's strings are in use. Strings that are not valid UTF-8, as
// proxies before the fix wrote a path decoded from "%c0%af" or a Latin-1
// header, come back with those bytes written as %XX (event.UnmarshalEvent
// sanitizes them): the detectors copy them into anomalies, which must be
// valid UTF-8.
func (r *Reader) Next(ev *event.RequestEvent) (label string, err error) {
	at := r.offset
	fail := func(what string, err error) (string, error) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("%s: record %d at byte %d: %s: %w", r.name, r.n, at, what, err)
	}
	n, err := binary.ReadUvarint(r)
	if err == io.EOF && r.offset == at {
		return "", io.EOF
	}
	if err != nil {
		return fail("reading label length", err)
	}
	if n > maxLabel {
		return fail("label length", fmt.Errorf("%d bytes, limit %d", n, maxLabel))
	}
	lb := make([]byte, n)
	if _, err := io.ReadFull(r, lb); err != nil {
		return fail("reading label", err)
	}
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return fail("reading event length", err)
	}
	if size > maxEvent {
		return fail("event length", fmt.Errorf("%d bytes, limit %d", size, maxEvent))
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return fail("reading event", err)
	}
	ev.Reset()
	if err := event.UnmarshalEvent(buf, ev); err != nil {
		return fail("decoding event", err)
	}
	r.n++
	return string(lb), nil
}

// ReadByte lets binary.ReadUvarint read through the Reader, counting bytes.
func (r *Reader) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err == nil {
		r.offset++
	}
	return b, err
}

// Read reads through the Reader, counting bytes.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.offset += int64(n)
	return n, err
}
