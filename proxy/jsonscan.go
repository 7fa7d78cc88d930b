package proxy

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

// JSONLimits bound what a JSON body may hold.
type JSONLimits struct {
	// MaxDepth is the deepest nesting of objects and arrays.
	MaxDepth int `yaml:"max_depth"`
	// MaxElements is the most values (members, items, scalars) in total.
	MaxElements int `yaml:"max_elements"`
	// MaxString is the longest string, in bytes, after unescaping.
	MaxString int `yaml:"max_string"`
}

// JSONError says what is wrong with a JSON body and at which byte.
type JSONError struct {
	Offset int64
	// Limit is true when the body broke a limit rather than the grammar.
	Limit bool
	Msg   string
}

func (e *JSONError) Error() string { return fmt.Sprintf("JSON body at byte %d: %s", e.Offset, e.Msg) }

// ScanJSON reads one JSON value from r, byte by byte, without building it,
// and stops at the first byte that breaks the grammar or a limit: a
// million nested arrays cost MaxDepth bytes of reading, not a million.
// onString gets every string (keys and values) unescaped, as a slice valid
// only during the call; it returns false to stop the scan (ScanJSON then
// returns nil). Trailing whitespace is allowed, anything else after the
// value is an error.
func ScanJSON(r io.ByteReader, lim JSONLimits, onString func(s []byte, key bool) bool) error {
	return ScanJSONLeaves(r, lim, onString, nil)
}

// maxPathKey bounds the bytes of one key in a leaf's path (ScanJSONLeaves).
const maxPathKey = 64

// ScanJSONLeaves is ScanJSON that also calls leaf, when it is not nil, after
// onString, with every scalar's path and text: the path is "$" and, for
// each level, "." and the key (its first maxPathKey bytes) or "[]" for an
// array item ("$.items[].sku"); the text is a string unescaped, a number
// or literal as written. Both slices are valid only during the call. With
// leaf nil it costs what ScanJSON costs.
func ScanJSONLeaves(r io.ByteReader, lim JSONLimits, onString func(s []byte, key bool) bool, leaf func(path, v []byte)) error {
	s := &jsonScanner{r: r, lim: lim, on: onString, leaf: leaf}
	if leaf != nil {
		s.path = append(s.path, '$')
	}
	if err := s.value(0); err != nil {
		if errors.Is(err, errStop) {
			return nil
		}
		return err
	}
	c, err := s.skipSpace()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	return s.fail(false, "unexpected %q after the value", c)
}

var errStop = errors.New("stopped")

type jsonScanner struct {
	r        io.ByteReader
	lim      JSONLimits
	on       func([]byte, bool) bool
	off      int64
	elements int
	buf      []byte
	peeked   int // -1 none, else the byte
	hasPeek  bool
	// leaf, path and lit serve ScanJSONLeaves's leaf callback.
	leaf func(path, v []byte)
	path []byte
	lit  []byte
}

func (s *jsonScanner) fail(limit bool, format string, args ...any) error {
	return &JSONError{Offset: s.off, Limit: limit, Msg: fmt.Sprintf(format, args...)}
}

func (s *jsonScanner) next() (byte, error) {
	if s.hasPeek {
		s.hasPeek = false
		return byte(s.peeked), nil
	}
	c, err := s.r.ReadByte()
	if err != nil {
		return 0, err
	}
	s.off++
	return c, nil
}

func (s *jsonScanner) unread(c byte) { s.peeked, s.hasPeek = int(c), true }

func (s *jsonScanner) skipSpace() (byte, error) {
	for {
		c, err := s.next()
		if err != nil {
			return 0, err
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c, nil
		}
	}
}

func (s *jsonScanner) eof(err error) error {
	if err == io.EOF {
		return s.fail(false, "unexpected end of body")
	}
	return err
}

func (s *jsonScanner) value(depth int) error {
	s.elements++
	if s.lim.MaxElements > 0 && s.elements > s.lim.MaxElements {
		return s.fail(true, "more than %d elements", s.lim.MaxElements)
	}
	c, err := s.skipSpace()
	if err != nil {
		return s.eof(err)
	}
	switch {
	case c == '{' || c == '[':
		if s.lim.MaxDepth > 0 && depth+1 > s.lim.MaxDepth {
			return s.fail(true, "nested deeper than %d", s.lim.MaxDepth)
		}
		if c == '{' {
			return s.object(depth + 1)
		}
		return s.array(depth + 1)
	case c == '"':
		return s.str(false)
	case c == '-' || c >= '0' && c <= '9':
		return s.number(c)
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.fail(false, "unexpected %q", c)
}

func (s *jsonScanner) object(depth int) error {
	c, err := s.skipSpace()
	if err != nil {
		return s.eof(err)
	}
	if c == '}' {
		return nil
	}
	for {
		if c != '"' {
			return s.fail(false, "object key must be a string, got %q", c)
		}
		if err := s.str(true); err != nil {
			return err
		}
		mark := len(s.path)
		if s.leaf != nil {
			s.path = append(append(s.path, '.'), s.buf[:min(len(s.buf), maxPathKey)]...)
		}
		if c, err = s.skipSpace(); err != nil {
			return s.eof(err)
		}
		if c != ':' {
			return s.fail(false, "expected ':' after an object key, got %q", c)
		}
		if err := s.value(depth); err != nil {
			return err
		}
		s.path = s.path[:mark]
		if c, err = s.skipSpace(); err != nil {
			return s.eof(err)
		}
		switch c {
		case '}':
			return nil
		case ',':
			if c, err = s.skipSpace(); err != nil {
				return s.eof(err)
			}
		default:
			return s.fail(false, "expected ',' or '}' in an object, got %q", c)
		}
	}
}

func (s *jsonScanner) array(depth int) error {
	c, err := s.skipSpace()
	if err != nil {
		return s.eof(err)
	}
	if c == ']' {
		return nil
	}
	s.unread(c)
	if s.leaf != nil {
		mark := len(s.path)
		s.path = append(s.path, "[]"...)
		defer func() { s.path = s.path[:mark] }()
	}
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		if c, err = s.skipSpace(); err != nil {
			return s.eof(err)
		}
		switch c {
		case ']':
			return nil
		case ',':
		default:
			return s.fail(false, "expected ',' or ']' in an array, got %q", c)
		}
	}
}

// literal reads the rest of lit, whose first byte was read.
func (s *jsonScanner) literal(lit string) error {
	for i := 1; i < len(lit); i++ {
		c, err := s.next()
		if err != nil {
			return s.eof(err)
		}
		if c != lit[i] {
			return s.fail(false, "bad literal")
		}
	}
	if s.leaf != nil {
		s.lit = append(s.lit[:0], lit...)
		s.leaf(s.path, s.lit)
	}
	return nil
}

// number accepts the JSON number grammar loosely (digits, sign, dot,
// exponent) and leaves the byte after it unread.
func (s *jsonScanner) number(first byte) error {
	digits := first >= '0' && first <= '9'
	if s.leaf != nil {
		s.lit = append(s.lit[:0], first)
	}
	for {
		c, err := s.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if c >= '0' && c <= '9' {
			digits = true
		} else if c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			s.unread(c)
			break
		}
		if s.leaf != nil && len(s.lit) < maxPathKey {
			s.lit = append(s.lit, c)
		}
	}
	if !digits {
		return s.fail(false, "number without digits")
	}
	if s.leaf != nil {
		s.leaf(s.path, s.lit)
	}
	return nil
}

func (s *jsonScanner) str(key bool) error {
	s.buf = s.buf[:0]
	for {
		c, err := s.next()
		if err != nil {
			return s.eof(err)
		}
		switch {
		case c == '"':
			if !utf8.Valid(s.buf) {
				return s.fail(false, "string is not valid UTF-8")
			}
			if s.on != nil && !s.on(s.buf, key) {
				return errStop
			}
			if s.leaf != nil && !key {
				s.leaf(s.path, s.buf)
			}
			return nil
		case c < 0x20:
			return s.fail(false, "control character in a string")
		case c == '\\':
			if err := s.escape(); err != nil {
				return err
			}
		default:
			s.buf = append(s.buf, c)
		}
		if s.lim.MaxString > 0 && len(s.buf) > s.lim.MaxString {
			return s.fail(true, "string longer than %d bytes", s.lim.MaxString)
		}
	}
}

func (s *jsonScanner) escape() error {
	c, err := s.next()
	if err != nil {
		return s.eof(err)
	}
	return s.escaped(c)
}

// escaped appends what the escape \c stands for.
func (s *jsonScanner) escaped(c byte) error {
	switch c {
	case '"', '\\', '/':
		s.buf = append(s.buf, c)
	case 'b':
		s.buf = append(s.buf, '\b')
	case 'f':
		s.buf = append(s.buf, '\f')
	case 'n':
		s.buf = append(s.buf, '\n')
	case 'r':
		s.buf = append(s.buf, '\r')
	case 't':
		s.buf = append(s.buf, '\t')
	case 'u':
		r, err := s.hex4()
		if err != nil {
			return err
		}
		if !utf16.IsSurrogate(r) {
			s.buf = utf8.AppendRune(s.buf, r)
			return nil
		}
		// A surrogate pair is two escapes: \uD83D\uDE00. A lone half
		// becomes U+FFFD, as encoding/json decodes it.
		b1, err := s.next()
		if err != nil {
			return s.eof(err)
		}
		if b1 != '\\' {
			s.buf = utf8.AppendRune(s.buf, utf8.RuneError)
			s.unread(b1)
			return nil
		}
		b2, err := s.next()
		if err != nil {
			return s.eof(err)
		}
		if b2 != 'u' {
			s.buf = utf8.AppendRune(s.buf, utf8.RuneError)
			return s.escaped(b2)
		}
		r2, err := s.hex4()
		if err != nil {
			return err
		}
		if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
			s.buf = utf8.AppendRune(s.buf, d)
			return nil
		}
		s.buf = utf8.AppendRune(s.buf, utf8.RuneError)
		if utf16.IsSurrogate(r2) {
			s.buf = utf8.AppendRune(s.buf, utf8.RuneError)
		} else {
			s.buf = utf8.AppendRune(s.buf, r2)
		}
	default:
		return s.fail(false, "bad escape \\%c", c)
	}
	return nil
}

func (s *jsonScanner) hex4() (rune, error) {
	var r rune
	for range 4 {
		c, err := s.next()
		if err != nil {
			return 0, s.eof(err)
		}
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, s.fail(false, "bad \\u escape")
		}
	}
	return r, nil
}
