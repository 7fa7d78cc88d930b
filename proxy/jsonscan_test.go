package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func scan(t testing.TB, body string, lim JSONLimits) ([]string, error) {
	t.Helper()
	var got []string
	err := ScanJSON(bufio.NewReader(strings.NewReader(body)), lim, func(s []byte, key bool) bool {
		if key {
			got = append(got, "k:"+string(s))
		} else {
			got = append(got, string(s))
		}
		return true
	})
	return got, err
}

func TestScanJSON(t *testing.T) {
	lim := JSONLimits{MaxDepth: 3, MaxElements: 10, MaxString: 16}
	for _, tc := range []struct {
		name, body string
		strings    []string
		err        string // substring; "" for none
		limit      bool
	}{
		{"object", `{"a": "x", "b": [1, 2.5e3, -0.1, true, null]}`, []string{"k:a", "x", "k:b"}, "", false},
		{"escapes", `["a\"b\\c\/d\n", "\u00e9\ud83d\ude00", "\ud800x"]`, []string{"a\"b\\c/d\n", "é😀", "\uFFFDx"}, "", false},
		{"empty containers", `{"a":{},"b":[]}`, []string{"k:a", "k:b"}, "", false},
		{"scalar", ` 42 `, nil, "", false},
		{"trailing garbage", `{} x`, nil, `unexpected 'x' after the value`, false},
		{"unterminated", `{"a": "x`, nil, "unexpected end of body", false},
		{"bad key", `{a: 1}`, nil, "object key must be a string", false},
		{"missing colon", `{"a" 1}`, nil, "expected ':'", false},
		{"trailing comma", `[1,]`, nil, "unexpected ']'", false},
		{"bad literal", `[tru]`, nil, "bad literal", false},
		{"control char", "[\"a\x01\"]", nil, "control character", false},
		{"bad escape", `["\x"]`, nil, `bad escape \x`, false},
		{"invalid utf8", "[\"\xff\"]", nil, "not valid UTF-8", false},
		{"too deep", `[[[[1]]]]`, nil, "nested deeper than 3", true},
		{"too many", `[1,2,3,4,5,6,7,8,9,10]`, nil, "more than 10 elements", true},
		{"long string", `["aaaaaaaaaaaaaaaaaaaa"]`, nil, "longer than 16 bytes", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scan(t, tc.body, lim)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("ScanJSON(%s) = %v", tc.body, err)
				}
				if strings.Join(got, "|") != strings.Join(tc.strings, "|") {
					t.Errorf("strings %q, want %q", got, tc.strings)
				}
				return
			}
			var je *JSONError
			if !errors.As(err, &je) || !strings.Contains(err.Error(), tc.err) || je.Limit != tc.limit {
				t.Fatalf("ScanJSON(%s) = %v, want an error containing %q (limit %v)", tc.body, err, tc.err, tc.limit)
			}
		})
	}
}

// countingReader counts the bytes ScanJSON asked for.
type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) ReadByte() (byte, error) { c.n++; return c.r.ReadByte() }

func TestScanJSONStopsAtTheLimit(t *testing.T) {
	body := strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20)
	cr := &countingReader{r: bytes.NewReader([]byte(body))}
	err := ScanJSON(cr, JSONLimits{MaxDepth: 64}, nil)
	var je *JSONError
	if !errors.As(err, &je) || !je.Limit || je.Offset != 65 {
		t.Fatalf("err = %v, want a depth limit at byte 65", err)
	}
	if cr.n > 100 {
		t.Errorf("read %d bytes of a 2 MiB body to refuse it at depth 64", cr.n)
	}
}

func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,"x",{"b":null}]}`, `"\ud83d\ude00"`, `[1e5,-2.5E-3]`, `{"a":"\u0000"}`, `[`, `"\ud800\u0041"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []string
		err := ScanJSON(bytes.NewReader(data), JSONLimits{}, func(s []byte, key bool) bool {
			if !utf8.Valid(s) {
				t.Fatalf("string callback got invalid UTF-8 %q", s)
			}
			got = append(got, string(s))
			return true
		})
		if json.Valid(data) && utf8.Valid(data) && err != nil {
			t.Fatalf("valid JSON %q refused: %v", data, err)
		}
		if err != nil {
			return
		}
		// Every string encoding/json sees in what both accept, the scanner
		// has seen too: no string reaches the upstream uninspected. (The
		// scanner may see more: encoding/json keeps only the last of
		// duplicate keys.)
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		var want []string
		collect(v, &want)
		seen := map[string]int{}
		for _, s := range got {
			seen[s]++
		}
		for _, s := range want {
			if seen[s] == 0 {
				t.Fatalf("encoding/json sees %q, the scanner does not (it saw %q)", s, got)
			}
			seen[s]--
		}
	})
}

// collect appends the strings of v, keys included.
func collect(v any, out *[]string) {
	switch v := v.(type) {
	case string:
		*out = append(*out, v)
	case []any:
		for _, e := range v {
			collect(e, out)
		}
	case map[string]any:
		for k, e := range v {
			*out = append(*out, k)
			collect(e, out)
		}
	}
}
