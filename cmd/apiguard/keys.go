package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/proxy/auth"
)

// cmdKeys manages API keys: 'apiguard keys new --id ID' prints a fresh key
// once, and the entry (with only the secret's hash) to add to the key
// store (proxy.auth.keys_file).
func cmdKeys(_ context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		return fmt.Errorf("%w: apiguard keys new --id ID [--plan P] [--scopes a,b]", errUsage)
	}
	fs := newFlagSet("keys new")
	id := fs.String("id", "", "key id (the part before the '.'; shows in events and logs)")
	plan := fs.String("plan", "", "rate-limit plan")
	scopes := fs.String("scopes", "", "comma-separated scopes")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var sc []string
	if *scopes != "" {
		sc = strings.Split(*scopes, ",")
	}
	key, entry, err := auth.NewAPIKey(*id, *plan, sc)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	b, err := yaml.Marshal([]auth.APIKey{entry})
	if err != nil {
		return fmt.Errorf("encoding the entry: %w", err)
	}
	fmt.Fprintf(out, "# API key (shown once; apiguard stores only its hash):\n# %s\n# Add to the key store under keys:\n%s", key, b)
	return nil
}
