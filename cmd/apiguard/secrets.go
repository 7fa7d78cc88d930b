package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/apiguard/apiguard/proxy/auth"
)

const secretsUsage = `apiguard secrets set NAME [--config F]   seal a value read from standard input
apiguard secrets list [--config F]       names and dates, never values
apiguard secrets rotate --new-key-file F [--config F]
                                         reseal every secret under a new master key
apiguard secrets master-key              print a fresh random master key`

// cmdSecrets manages the secret vault (proxy.secrets.vault_file) under the
// master key from proxy.secrets (environment or key file). Values are read
// from standard input, never from arguments, so they stay out of shell
// history and process listings.
func cmdSecrets(_ context.Context, args []string, in io.Reader, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w:\n%s", errUsage, secretsUsage)
	}
	if args[0] == "master-key" {
		if err := parseArgs(newFlagSet("secrets master-key"), args[1:]); err != nil {
			return err
		}
		k, err := auth.NewMasterKey()
		if err != nil {
			return err
		}
		fmt.Fprintln(out, k)
		return nil
	}
	switch args[0] {
	case "set", "list", "rotate":
	default:
		return fmt.Errorf("%w: unknown secrets command %q\n%s", errUsage, args[0], secretsUsage)
	}
	c := newCommon("secrets " + args[0])
	var newKeyFile *string
	var output *outputFormat
	switch args[0] {
	case "rotate":
		newKeyFile = c.fs.String("new-key-file", "", "file holding the new master key")
	case "list":
		output = outputFlags(c.fs)
	}
	cfg, err := c.load(args[1:], nil)
	if err != nil {
		return err
	}
	var name string
	switch {
	case args[0] == "set" && c.fs.NArg() != 1:
		return fmt.Errorf("%w: apiguard secrets set NAME (the value on standard input)", errUsage)
	case args[0] == "set":
		name = c.fs.Arg(0)
	case c.fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, c.fs.Arg(0))
	}
	sc := cfg.Proxy.Secrets
	if sc.VaultFile == "" {
		return fmt.Errorf("%w: proxy.secrets.vault_file is not set", errUsage)
	}
	key, err := auth.LoadMasterKey(sc)
	if err != nil {
		return err
	}
	v, err := auth.LoadVault(sc.VaultFile, key, args[0] == "set")
	if err != nil {
		return err
	}
	switch args[0] {
	case "set":
		value, err := io.ReadAll(io.LimitReader(in, 64<<10))
		if err != nil {
			return fmt.Errorf("reading the value: %w", err)
		}
		value = []byte(strings.TrimRight(string(value), "\r\n"))
		if err := v.Set(name, value, time.Now()); err != nil {
			return err
		}
		clear(value)
		if err := v.Save(sc.VaultFile); err != nil {
			return err
		}
		fmt.Fprintf(out, "sealed %s in %s (master key %s); reload the proxies to use it\n", name, sc.VaultFile, v.KeyID)
	case "list":
		asJSON, err := output.isJSON()
		if err != nil {
			return err
		}
		if asJSON {
			type listed struct {
				Name    string    `json:"name"`
				Updated time.Time `json:"updated"`
			}
			l := struct {
				Vault   string   `json:"vault"`
				KeyID   string   `json:"key_id"`
				Secrets []listed `json:"secrets"`
			}{Vault: sc.VaultFile, KeyID: v.KeyID, Secrets: []listed{}}
			for _, s := range v.Secrets {
				l.Secrets = append(l.Secrets, listed{s.Name, s.Updated})
			}
			return writeJSON(out, l)
		}
		fmt.Fprintf(out, "vault %s, master key %s\n", sc.VaultFile, v.KeyID)
		for _, s := range v.Secrets {
			fmt.Fprintf(out, "%-40s updated %s\n", s.Name, s.Updated.Format(time.RFC3339))
		}
	case "rotate":
		if *newKeyFile == "" {
			return fmt.Errorf("%w: apiguard secrets rotate --new-key-file F", errUsage)
		}
		data, err := os.ReadFile(*newKeyFile)
		if err != nil {
			return fmt.Errorf("--new-key-file: %w", err)
		}
		nk, err := auth.ParseMasterKey(string(data))
		if err != nil {
			return fmt.Errorf("--new-key-file %s: %w", *newKeyFile, err)
		}
		if err := v.Rekey(nk); err != nil {
			return err
		}
		if err := v.Save(sc.VaultFile); err != nil {
			return err
		}
		fmt.Fprintf(out, "resealed %d secrets under master key %s; give the proxies the new key, then restart or reload them\n", len(v.Secrets), v.KeyID)
	default:
		return fmt.Errorf("%w: unknown secrets command %q\n%s", errUsage, args[0], secretsUsage)
	}
	return nil
}
