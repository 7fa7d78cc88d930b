package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/proxy/auth"
)

func TestSecretsCommand(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	newKeyFile := filepath.Join(dir, "master2.key")
	for _, f := range []string{keyFile, newKeyFile} {
		var out bytes.Buffer
		if err := cmdSecrets(context.Background(), []string{"master-key"}, nil, &out); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	vaultFile := filepath.Join(dir, "vault.yaml")
	cfgFile := filepath.Join(dir, "apiguard.yaml")
	if err := os.WriteFile(cfgFile, []byte("proxy:\n  secrets:\n    vault_file: "+vaultFile+"\n    master_key_file: "+keyFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args []string, stdin string) string {
		t.Helper()
		var out bytes.Buffer
		if err := cmdSecrets(context.Background(), args, strings.NewReader(stdin), &out); err != nil {
			t.Fatalf("secrets %v: %v", args, err)
		}
		return out.String()
	}
	run([]string{"set", "upstream/payments", "--config", cfgFile}, "sk_live_123\n")
	run([]string{"set", "signing/partner-1", "--config", cfgFile}, "s3cret")
	list := run([]string{"list", "--config", cfgFile}, "")
	if !strings.Contains(list, "upstream/payments") || !strings.Contains(list, "signing/partner-1") || strings.Contains(list, "sk_live") {
		t.Fatalf("list:\n%s", list)
	}
	run([]string{"rotate", "--new-key-file", newKeyFile, "--config", cfgFile}, "")
	data, _ := os.ReadFile(newKeyFile)
	nk, _ := auth.ParseMasterKey(string(data))
	v, err := auth.LoadVault(vaultFile, nk, false)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := v.Open("upstream/payments"); string(p) != "sk_live_123" {
		t.Errorf("after rotate: %q (the trailing newline must be dropped)", p)
	}
	// The old key no longer opens it.
	var out bytes.Buffer
	if err := cmdSecrets(context.Background(), []string{"list", "--config", cfgFile}, nil, &out); err == nil || !strings.Contains(err.Error(), "sealed under master key") {
		t.Errorf("list with the old key: %v", err)
	}
}
