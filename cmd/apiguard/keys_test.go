package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/proxy/auth"
)

func TestKeysNewMakesAWorkingEntry(t *testing.T) {
	var out bytes.Buffer
	if err := cmdKeys(context.Background(), []string{"new", "--id", "p1", "--plan", "gold", "--scopes", "a,b"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	key := strings.TrimPrefix(lines[1], "# ")
	if !strings.HasPrefix(key, "p1.") || len(key) < 40 {
		t.Fatalf("key line %q", lines[1])
	}
	store := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(store, []byte("keys:\n"+indent(strings.Join(lines[3:], "\n"))), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.LoadKeys(store)
	if err != nil {
		t.Fatalf("the printed entry does not load: %v\n%s", err, out.String())
	}
	k := keys["p1"]
	if k == nil || k.Plan != "gold" || len(k.Scopes) != 2 {
		t.Fatalf("entry %+v", k)
	}
	sum := sha256.Sum256([]byte(strings.TrimPrefix(key, "p1.")))
	if hex.EncodeToString(sum[:]) != k.SecretSHA256 {
		t.Error("the stored hash is not the key's secret's")
	}
	if strings.Contains(strings.Join(lines[3:], "\n"), key[3:]) {
		t.Error("the store entry contains the secret")
	}
	if err := cmdKeys(context.Background(), []string{"new", "--id", "a.b"}, &out); err == nil {
		t.Error("an id with '.' was accepted")
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}
