package emit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func recs(n int, prefix string) []Record {
	var out []Record
	for i := range n {
		out = append(out, Record{Subject: "apiguard.events.1", MsgID: fmt.Sprintf("%s-%03d", prefix, i), Data: []byte(strings.Repeat("x", i))})
	}
	return out
}

func TestSpoolRoundTripAndOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20, 2<<10) // small segments: several files
	if err != nil {
		t.Fatal(err)
	}
	in := recs(100, "a")
	if n, err := s.Append(in); err != nil || n != 100 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen: the segments survive and are read oldest first.
	s, err = OpenSpool(dir, 1<<20, 2<<10)
	if err != nil {
		t.Fatal(err)
	}
	if s.Bytes() == 0 {
		t.Fatal("reopened spool is empty")
	}
	var out []Record
	for {
		p, ok, err := s.Oldest()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got, err := ReadSegment(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got...)
		if err := s.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if len(out) != len(in) {
		t.Fatalf("read %d records, wrote %d", len(out), len(in))
	}
	for i := range in {
		if out[i].MsgID != in[i].MsgID || out[i].Subject != in[i].Subject || string(out[i].Data) != string(in[i].Data) {
			t.Fatalf("record %d: got %+v, want %+v", i, out[i], in[i])
		}
	}
	if s.Bytes() != 0 {
		t.Errorf("Bytes = %d after removing everything", s.Bytes())
	}
}

func TestSpoolFull(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), 2<<10, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Append(recs(100, "f"))
	if !errors.Is(err, ErrSpoolFull) || n == 0 || n == 100 {
		t.Fatalf("Append = %d, %v; want a partial write and ErrSpoolFull", n, err)
	}
	if s.Bytes() > 2<<10 {
		t.Errorf("spool holds %d bytes, limit %d", s.Bytes(), 2<<10)
	}
}

func TestReadSegmentDamage(t *testing.T) {
	dir := t.TempDir()
	s, _ := OpenSpool(dir, 1<<20, 1<<20)
	if _, err := s.Append(recs(5, "d")); err != nil {
		t.Fatal(err)
	}
	p, _, _ := s.Oldest()
	data, _ := os.ReadFile(p)
	tests := []struct {
		name    string
		mangle  func([]byte) []byte
		want    int
		errPart string
	}{
		{"intact", func(b []byte) []byte { return b }, 5, ""},
		{"torn tail", func(b []byte) []byte { return b[:len(b)-3] }, 4, "overruns"},
		{"flipped byte", func(b []byte) []byte { c := append([]byte(nil), b...); c[len(c)-1] ^= 1; return c }, 4, "checksum"},
		{"short header", func(b []byte) []byte { return append(append([]byte(nil), b...), 0, 0) }, 5, "truncated header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "seg")
			if err := os.WriteFile(f, tt.mangle(data), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadSegment(f)
			if len(got) != tt.want {
				t.Errorf("read %d records, want %d", len(got), tt.want)
			}
			if tt.errPart == "" && err != nil || tt.errPart != "" && (err == nil || !strings.Contains(err.Error(), tt.errPart) || !strings.Contains(err.Error(), f)) {
				t.Errorf("err = %v, want one naming the file and %q", err, tt.errPart)
			}
		})
	}
}

// FuzzDecodeRecords: spool files are read back after crashes; whatever is in
// them, decoding must not panic and must return only whole records.
func FuzzDecodeRecords(f *testing.F) {
	dir := f.TempDir()
	s, _ := OpenSpool(dir, 1<<20, 1<<20)
	_, _ = s.Append(recs(3, "z"))
	p, _, _ := s.Oldest()
	good, _ := os.ReadFile(p)
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := DecodeRecords(b)
		total := 0
		for _, r := range recs {
			total += headerLen + 4 + len(r.Subject) + len(r.MsgID) + len(r.Data)
		}
		if total > len(b) {
			t.Fatalf("decoded %d bytes of records from %d bytes", total, len(b))
		}
		if err == nil && total != len(b) {
			t.Fatalf("no error but %d of %d bytes consumed", total, len(b))
		}
	})
}
