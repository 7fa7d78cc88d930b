package emit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Record is one spooled message: where it goes, its de-duplication id and its bytes.
type Record struct {
	Subject string
	MsgID   string
	Data    []byte
}

// ErrSpoolFull is returned by Append when the spool has no room left.
var ErrSpoolFull = errors.New("spool full")

// Record framing: a header of payload length (u32) and CRC-32C of the
// payload (u32), then the payload: subject length (u16), subject, id length
// (u16), id, data.
const (
	headerLen  = 8
	maxRecord  = 16 << 20
	segPrefix  = "spool-"
	segSuffix  = ".seg"
	segNameFmt = segPrefix + "%020d" + segSuffix
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Spool is a directory of append-only segment files that holds events while
// NATS is away, oldest first. Segments survive a restart of the process.
// It is safe for concurrent use.
type Spool struct {
	dir      string
	maxBytes int64
	segBytes int64

	mu      sync.Mutex
	cur     *os.File
	curBuf  *bufio.Writer
	curPath string
	curSize int64
	total   int64
	nextSeq uint64
}

// OpenSpool opens (creating if needed) the spool in dir, which holds at most
// maxBytes in segments of about segBytes.
func OpenSpool(dir string, maxBytes, segBytes int64) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating spool %s: %w", dir, err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, segBytes: segBytes}
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	for _, p := range segs {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("reading spool: %w", err)
		}
		s.total += fi.Size()
		var seq uint64
		if _, err := fmt.Sscanf(filepath.Base(p), segNameFmt, &seq); err == nil && seq >= s.nextSeq {
			s.nextSeq = seq + 1
		}
	}
	return s, nil
}

// segments returns the segment paths, oldest first.
func (s *Spool) segments() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing spool %s: %w", s.dir, err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, segPrefix) && strings.HasSuffix(n, segSuffix) {
			out = append(out, filepath.Join(s.dir, n))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Bytes returns the bytes held.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Append writes recs in order. If the spool fills, it writes what fits and
// returns how many it wrote with ErrSpoolFull.
func (s *Spool) Append(recs []Record) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range recs {
		payload := 2 + len(r.Subject) + 2 + len(r.MsgID) + len(r.Data)
		if len(r.Subject) > 0xffff || len(r.MsgID) > 0xffff || payload > maxRecord {
			return i, fmt.Errorf("spooling record %q: too large", r.MsgID)
		}
		size := int64(headerLen + payload)
		if s.total+size > s.maxBytes {
			return i, ErrSpoolFull
		}
		if s.cur == nil || s.curSize+size > s.segBytes && s.curSize > 0 {
			if err := s.rotate(); err != nil {
				return i, err
			}
		}
		if err := writeRecord(s.curBuf, r, payload); err != nil {
			return i, fmt.Errorf("spooling to %s: %w", s.curPath, err)
		}
		s.curSize += size
		s.total += size
	}
	if s.curBuf != nil {
		if err := s.curBuf.Flush(); err != nil {
			return len(recs), fmt.Errorf("spooling to %s: %w", s.curPath, err)
		}
	}
	return len(recs), nil
}

func writeRecord(w *bufio.Writer, r Record, payload int) error {
	buf := make([]byte, headerLen, headerLen+payload)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(r.Subject)))
	buf = append(buf, r.Subject...)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(r.MsgID)))
	buf = append(buf, r.MsgID...)
	buf = append(buf, r.Data...)
	binary.BigEndian.PutUint32(buf[0:4], uint32(payload))
	binary.BigEndian.PutUint32(buf[4:8], crc32.Checksum(buf[headerLen:], castagnoli))
	_, err := w.Write(buf)
	return err
}

// rotate closes the current segment (syncing it) and opens a new one.
func (s *Spool) rotate() error {
	if err := s.closeCurrent(); err != nil {
		return err
	}
	p := filepath.Join(s.dir, fmt.Sprintf(segNameFmt, s.nextSeq))
	s.nextSeq++
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("creating spool segment: %w", err)
	}
	s.cur, s.curBuf, s.curPath, s.curSize = f, bufio.NewWriterSize(f, 64<<10), p, 0
	return nil
}

func (s *Spool) closeCurrent() error {
	if s.cur == nil {
		return nil
	}
	f, buf := s.cur, s.curBuf
	s.cur, s.curBuf = nil, nil
	if err := buf.Flush(); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing spool segment %s: %w", s.curPath, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("syncing spool segment %s: %w", s.curPath, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing spool segment %s: %w", s.curPath, err)
	}
	return nil
}

// Oldest returns the oldest segment, closing the current one first if it is
// the only one, so that the returned segment is complete.
func (s *Spool) Oldest() (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	segs, err := s.segments()
	if err != nil || len(segs) == 0 {
		return "", false, err
	}
	if segs[0] == s.curPath && s.cur != nil {
		if err := s.closeCurrent(); err != nil {
			return "", false, err
		}
	}
	return segs[0], true, nil
}

// Remove deletes a segment that has been sent.
func (s *Spool) Remove(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("removing spool segment: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing spool segment: %w", err)
	}
	s.total -= fi.Size()
	return nil
}

// Close syncs and closes the current segment.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeCurrent()
}

// ReadSegment returns the records of a segment file. A damaged record ends
// the read: the records before it are returned with an error that names the
// file and offset.
func ReadSegment(path string) ([]Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading spool segment: %w", err)
	}
	recs, err := DecodeRecords(data)
	if err != nil {
		return recs, fmt.Errorf("spool segment %s: %w", path, err)
	}
	return recs, nil
}

// DecodeRecords parses framed records from b.
func DecodeRecords(b []byte) ([]Record, error) {
	var out []Record
	off := 0
	for off < len(b) {
		if len(b)-off < headerLen {
			return out, fmt.Errorf("offset %d: truncated header: %w", off, io.ErrUnexpectedEOF)
		}
		n := int(binary.BigEndian.Uint32(b[off:]))
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n > maxRecord || n > len(b)-off-headerLen {
			return out, fmt.Errorf("offset %d: record of %d bytes overruns the segment: %w", off, n, io.ErrUnexpectedEOF)
		}
		p := b[off+headerLen : off+headerLen+n]
		if crc32.Checksum(p, castagnoli) != sum {
			return out, fmt.Errorf("offset %d: checksum mismatch", off)
		}
		r, ok := decodePayload(p)
		if !ok {
			return out, fmt.Errorf("offset %d: malformed record", off)
		}
		out = append(out, r)
		off += headerLen + n
	}
	return out, nil
}

func decodePayload(p []byte) (Record, bool) {
	field := func() (string, bool) {
		if len(p) < 2 {
			return "", false
		}
		n := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+n {
			return "", false
		}
		s := string(p[2 : 2+n])
		p = p[2+n:]
		return s, true
	}
	subj, ok := field()
	if !ok {
		return Record{}, false
	}
	id, ok := field()
	if !ok {
		return Record{}, false
	}
	return Record{Subject: subj, MsgID: id, Data: slices.Clone(p)}, true
}
