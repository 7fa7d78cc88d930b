package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadKeyList(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "keys")
	if err := os.WriteFile(good, []byte("# partners\npartner-1.s3cret\n\n  partner-2.other.dots  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := readKeyList(good)
	if err != nil || len(keys) != 2 || keys["partner-1"] != "partner-1.s3cret" || keys["partner-2"] != "partner-2.other.dots" {
		t.Fatalf("readKeyList = %v, %v", keys, err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("partner-1.s3cret\nnodot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readKeyList(bad); err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a line without an id: %v", err)
	}
}

func TestReplaySendUsage(t *testing.T) {
	for _, args := range [][]string{
		{"send"},
		{"send", "x.capture"},
		{"send", "x.capture", "--target", "http://127.0.0.1:1", "--speed", "fast"},
		{"send", "x.capture", "--target", "http://127.0.0.1:1", "--speed", "0"},
	} {
		if err := cmdReplay(args, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("replay %v: %v, want a usage error", args, err)
		}
	}
}
