package event

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// crockford is the base32 alphabet of ULIDs: sortable, no ambiguous letters.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDLen is the length of an id made by NewID.
const IDLen = 26

// IDSource makes ids that sort by time and are unique: 48 bits of
// milliseconds, then 80 bits that are random at each new millisecond and
// incremented within one, as in ULID. The zero value is not usable; use
// NewIDSource. It is safe for concurrent use.
type IDSource struct {
	mu     sync.Mutex
	lastMS uint64
	hi     uint16 // top 16 of the 80 entropy bits
	lo     uint64 // low 64
}

// NewIDSource returns a source of ids.
func NewIDSource() *IDSource { return &IDSource{} }

var defaultIDs = NewIDSource()

// NewID returns a new id for time t from the process-wide source.
func NewID(t time.Time) string { return defaultIDs.New(t) }

// New returns a new id for time t. Ids made by one source for non-decreasing
// times sort in the order they were made.
func (s *IDSource) New(t time.Time) string {
	ms := uint64(t.UnixMilli())
	s.mu.Lock()
	if ms <= s.lastMS {
		ms = s.lastMS
		s.lo++
		if s.lo == 0 {
			s.hi++
		}
	} else {
		var b [10]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
		s.lastMS = ms
		s.hi = binary.BigEndian.Uint16(b[:2])
		s.lo = binary.BigEndian.Uint64(b[2:])
	}
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], ms<<16|uint64(s.hi))
	binary.BigEndian.PutUint64(raw[8:], s.lo)
	s.mu.Unlock()
	return encodeID(raw)
}

// HashID returns a deterministic id for time t whose entropy comes from
// parts, so that replaying the same events yields the same ids.
func HashID(t time.Time, parts ...string) string {
	// FNV-1a, 128-bit, spread over the 80 entropy bits.
	var h1, h2 uint64 = 0xcbf29ce484222325, 0x84222325cbf29ce4
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h1 = (h1 ^ uint64(p[i])) * 0x100000001b3
			h2 = (h2 ^ uint64(p[i])) * 0x100000001b3 * 31
		}
		h1 = (h1 ^ 0xff) * 0x100000001b3
	}
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(t.UnixMilli())<<16|h2&0xffff)
	binary.BigEndian.PutUint64(raw[8:], h1)
	return encodeID(raw)
}

func encodeID(raw [16]byte) string {
	// 128 bits in 26 base32 digits: the first digit holds the top 3 bits.
	hi := binary.BigEndian.Uint64(raw[:8])
	lo := binary.BigEndian.Uint64(raw[8:])
	var out [IDLen]byte
	for i := IDLen - 1; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// IDTime returns the millisecond time encoded in an id made by NewID or
// HashID, and false if id is not such an id.
func IDTime(id string) (time.Time, bool) {
	if len(id) != IDLen {
		return time.Time{}, false
	}
	var ms uint64
	// The first 10 digits hold 50 bits: 2 leading zero bits and the 48-bit time.
	for i := 0; i < 10; i++ {
		v := decodeDigit(id[i])
		if v < 0 {
			return time.Time{}, false
		}
		ms = ms<<5 | uint64(v)
	}
	if ms>>48 != 0 {
		return time.Time{}, false
	}
	for i := 10; i < IDLen; i++ {
		if decodeDigit(id[i]) < 0 {
			return time.Time{}, false
		}
	}
	return time.UnixMilli(int64(ms)), true
}

func decodeDigit(c byte) int {
	for i := 0; i < len(crockford); i++ {
		if crockford[i] == c {
			return i
		}
	}
	return -1
}
