// Command apiguard runs apiguard: the enforcing proxy, the detection
// pipeline and responder, an embedded NATS for single-host use, a demo,
// and the operator's commands on the enforcement state.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/apiguard/apiguard/internal/secret"
)

const usage = `apiguard protects HTTP APIs: an enforcing reverse proxy, streaming detection
over NATS JetStream, and a responder that blocks what it finds.

Usage: apiguard <command> [flags]

Commands:
  up            run everything in one process on embedded defaults
                (embedded NATS, proxy, pipeline, responder); --demo adds a demo
                API and traffic with an attacker
  proxy         run the enforcing proxy against --nats
  pipeline      run the detection pipeline and responder against --nats
  keys          new API key:         apiguard keys new --id ID [--plan P] [--scopes a,b]
  secrets       the sealed vault:    apiguard secrets set NAME | list | rotate --new-key-file F | master-key
  migrate       create or update the ClickHouse schema (--clickhouse host:9000)
  block         block a principal:   apiguard block [--ttl 1h] [--reason R] KIND VALUE
  unblock       remove an entry:     apiguard unblock KIND VALUE
  allow         never block:         apiguard allow [--ttl D] [--reason R] KIND VALUE
  unallow       remove an allow:     apiguard unallow KIND VALUE
  blocks        list the enforcement entries
  check-config  validate a config file and print the effective config
  demo-upstream run the demo API alone (for benchmarks)

KIND is one of ip, cidr, key, token, sub, fp.
Run 'apiguard <command> -h' for the flags of a command.
`

// errUsage marks a command-line mistake: the caller prints usage, exit 2.
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1], os.Args[2:], os.Stdout)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "apiguard %s: %v\n", os.Args[1], err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "apiguard %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cmd string, args []string, out io.Writer) error {
	switch cmd {
	case "up":
		return cmdUp(ctx, args, out)
	case "proxy":
		return cmdProxy(ctx, args)
	case "pipeline":
		return cmdPipeline(ctx, args)
	case "keys":
		return cmdKeys(ctx, args, out)
	case "secrets":
		return cmdSecrets(ctx, args, os.Stdin, out)
	case "migrate":
		return cmdMigrate(ctx, args, out)
	case "block":
		return cmdBlock(ctx, args, out)
	case "unblock":
		return cmdUnblock(ctx, args, out)
	case "allow":
		return cmdAllow(ctx, args, out)
	case "unallow":
		return cmdUnallow(ctx, args, out)
	case "blocks":
		return cmdBlocks(ctx, args, out)
	case "check-config":
		return cmdCheckConfig(args, out)
	case "replay":
		return cmdReplay(args, out)
	case "demo-upstream":
		return cmdDemoUpstream(ctx, args)
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	}
	return fmt.Errorf("%w: unknown command %q (want up, proxy, pipeline, keys, secrets, migrate, block, unblock, allow, unallow, blocks, check-config, replay)", errUsage, cmd)
}

// common are the flags every command that reads the config has.
type common struct {
	fs       *flag.FlagSet
	config   string
	nats     string
	logLevel string
}

func newCommon(name string) *common {
	c := &common{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.StringVar(&c.config, "config", "", "YAML config file (see docs/configuration.md)")
	c.fs.StringVar(&c.nats, "nats", "", "NATS URL, e.g. nats://127.0.0.1:4222 (overrides nats.url and $APIGUARD_NATS_URL)")
	c.fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error (overrides log.level)")
	return c
}

// load parses args and builds the layered, validated config; set applies
// the command's own flags after the common ones.
func (c *common) load(args []string, set func(*Config)) (Config, error) {
	if err := c.parse(args); err != nil {
		return Config{}, err
	}
	return c.build(set)
}

// parse parses the flags.
func (c *common) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// build layers defaults, file, environment and flags, and validates.
func (c *common) build(set func(*Config)) (Config, error) {
	cfg := DefaultConfig()
	if c.config != "" {
		if err := loadFile(c.config, &cfg); err != nil {
			return Config{}, err
		}
	}
	applyEnv(&cfg)
	if c.nats != "" {
		cfg.NATS.URL = secret.URL(c.nats)
	}
	if c.logLevel != "" {
		cfg.Log.Level = c.logLevel
	}
	if set != nil {
		set(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid config: %w", err)
	}
	return cfg, nil
}

func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
