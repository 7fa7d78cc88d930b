package enforce

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"time"
)

// The saved form of a Matcher (Save, Restore), for a proxy that starts
// from its last state instead of loading the whole bucket:
//
//	magic "AGENFSNAP" version(1)
//	header: source (uvarint length + bytes), revision (uvarint),
//	        saved at (varint Unix ns), entries (uvarint), value bytes (uvarint),
//	        entries of each kind from ip to fp (uvarint each)
//	values: every entry's value, concatenated
//	entries: kind, action (1 byte each), value length (uvarint),
//	         expires, trigger (varint Unix ns, 0 for none),
//	         rate (8 bytes, throttle entries only),
//	         allow entries only: reason, anomaly id, actor (uvarint length
//	         + bytes), created (varint Unix ns)
//	CRC-32C of everything before it (4 bytes, big-endian)
//
// Values come before the entries so that Restore makes one string of them
// all, which the restored rules share: no allocation per value.
const (
	saveMagic   = "AGENFSNAP"
	saveVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadSave marks saved state that Restore refuses: truncated, corrupt,
// of another format version, or inconsistent.
var ErrBadSave = errors.New("bad enforcement snapshot")

// Save writes the entries m holds at p to w. It reads one snapshot of m:
// changes made meanwhile are not in it.
func (m *Matcher) Save(w io.Writer, p Position, now time.Time) error {
	s := m.snap.Load()
	var rules []*Rule
	var perKind [numKinds]uint64
	values := 0
	m.Rules(func(r *Rule) bool {
		rules = append(rules, r)
		values += len(r.Value)
		perKind[r.Kind]++
		return true
	})
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 1<<16)
	var buf []byte
	buf = append(buf, saveMagic...)
	buf = append(buf, saveVersion)
	buf = appendString(buf, p.Source)
	buf = binary.AppendUvarint(buf, p.Revision)
	buf = binary.AppendVarint(buf, now.UnixNano())
	buf = binary.AppendUvarint(buf, uint64(len(rules)))
	buf = binary.AppendUvarint(buf, uint64(values))
	for k := KindIP; k < numKinds; k++ {
		buf = binary.AppendUvarint(buf, perKind[k])
	}
	if _, err := bw.Write(buf); err != nil {
		return fmt.Errorf("saving enforcement state: %w", err)
	}
	for _, r := range rules {
		if _, err := bw.WriteString(r.Value); err != nil {
			return fmt.Errorf("saving enforcement state: %w", err)
		}
	}
	for _, r := range rules {
		buf = append(buf[:0], byte(r.Kind), byte(r.Action))
		buf = binary.AppendUvarint(buf, uint64(len(r.Value)))
		buf = binary.AppendVarint(buf, r.expires)
		buf = binary.AppendVarint(buf, r.trigger)
		if r.Action == ActionThrottle {
			buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(r.Rate))
		}
		if r.Action == ActionAllow {
			e := s.allowed[Key{r.Kind, r.Value}]
			if e == nil {
				e = &Entry{}
			}
			buf = appendString(buf, e.Reason)
			buf = appendString(buf, e.AnomalyID)
			buf = appendString(buf, e.Actor)
			buf = binary.AppendVarint(buf, unixNano(e.Created))
		}
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("saving enforcement state: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("saving enforcement state: %w", err)
	}
	if _, err := w.Write(crc.Sum(nil)); err != nil {
		return fmt.Errorf("saving enforcement state: %w", err)
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// SaveInfo describes saved state that Restore read.
type SaveInfo struct {
	Position Position
	Saved    time.Time
	Entries  int // entries in the file
	Expired  int // of which left out because they had expired at now
}

// Restore reads state written by Save into a new Builder, leaving out the
// entries that have expired at now. Any damage (truncation, a bad
// checksum, an unknown version, an invalid entry) is an error wrapping
// ErrBadSave that says what and where; nothing of a damaged file is used.
func Restore(data []byte, now time.Time) (*Builder, SaveInfo, error) {
	var info SaveInfo
	if len(data) < len(saveMagic)+1+4 || string(data[:len(saveMagic)]) != saveMagic {
		return nil, info, fmt.Errorf("%w: not an enforcement snapshot (no %q header)", ErrBadSave, saveMagic)
	}
	if v := data[len(saveMagic)]; v != saveVersion {
		return nil, info, fmt.Errorf("%w: format version %d, want %d", ErrBadSave, v, saveVersion)
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, info, fmt.Errorf("%w: checksum %08x, want %08x (truncated or corrupt)", ErrBadSave, got, sum)
	}
	r := saveReader{b: body, off: len(saveMagic) + 1}
	info.Position.Source = r.string("source")
	info.Position.Revision = r.uvarint("revision")
	info.Saved = fromUnixNano(r.varint("saved at"))
	n := r.uvarint("entries")
	nv := r.uvarint("value bytes")
	var perKind [numKinds]uint64
	for k := KindIP; k < numKinds; k++ {
		perKind[k] = r.uvarint("entries of kind " + k.String())
	}
	if r.err == nil && (nv > uint64(len(body)-r.off) || n > uint64(len(body)-r.off)) {
		r.fail("entries", fmt.Errorf("%d entries and %d value bytes in %d bytes", n, nv, len(body)-r.off))
	}
	if r.err != nil {
		return nil, info, r.err
	}
	values := string(body[r.off : r.off+int(nv)])
	r.off += int(nv)
	vo := 0
	b := NewBuilder()
	for k, c := range perKind {
		// A hint only: bounded by the entries the file can hold.
		b.Grow(Kind(k), int(min(c, n)))
	}
	for i := range n {
		if len(body)-r.off < 2 {
			r.fail(fmt.Sprintf("entry %d", i), io.ErrUnexpectedEOF)
			break
		}
		e := Entry{Kind: Kind(body[r.off]), Action: Action(body[r.off+1])}
		r.off += 2
		vl := r.uvarint("value length")
		if r.err == nil && vl > uint64(len(values)-vo) {
			r.fail(fmt.Sprintf("entry %d", i), fmt.Errorf("value of %d bytes past the values' end", vl))
		}
		if r.err != nil {
			break
		}
		e.Value = values[vo : vo+int(vl)]
		vo += int(vl)
		e.Expires = fromUnixNano(r.varint("expires"))
		e.Trigger = fromUnixNano(r.varint("trigger"))
		if e.Action == ActionThrottle {
			if len(body)-r.off < 8 {
				r.fail(fmt.Sprintf("entry %d rate", i), io.ErrUnexpectedEOF)
				break
			}
			e.Rate = math.Float64frombits(binary.BigEndian.Uint64(body[r.off:]))
			r.off += 8
		}
		if e.Action == ActionAllow {
			e.Reason = r.string("reason")
			e.AnomalyID = r.string("anomaly id")
			e.Actor = r.string("actor")
			e.Created = fromUnixNano(r.varint("created"))
		}
		if r.err != nil {
			break
		}
		if e.Expired(now) {
			info.Expired++
			continue
		}
		if err := b.Put(e); err != nil {
			return nil, info, fmt.Errorf("%w: entry %d: %w", ErrBadSave, i, err)
		}
	}
	if r.err == nil && (vo != len(values) || r.off != len(body)) {
		r.fail("end", fmt.Errorf("%d value bytes and %d bytes left over", len(values)-vo, len(body)-r.off))
	}
	if r.err != nil {
		return nil, info, r.err
	}
	info.Entries = int(n)
	return b, info, nil
}

// saveReader decodes the fields of saved state, keeping the first error.
type saveReader struct {
	b   []byte
	off int
	err error
}

func (r *saveReader) fail(what string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d: %w", ErrBadSave, what, r.off, err)
	}
}

func (r *saveReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail(what, errors.New("bad varint"))
		return 0
	}
	r.off += n
	return v
}

func (r *saveReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail(what, errors.New("bad varint"))
		return 0
	}
	r.off += n
	return v
}

func (r *saveReader) string(what string) string {
	n := r.uvarint(what)
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail(what, fmt.Errorf("%d bytes past the end", n))
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s
}
