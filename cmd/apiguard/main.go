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
	"slices"
	"strings"
	"syscall"

	"github.com/apiguard/apiguard/internal/secret"
)

// errUsage marks a command-line mistake: the caller prints usage, exit 2.
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) < 2 {
		printUsage(os.Stderr)
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
		if c := commandFor(os.Args[1:]); c != nil {
			fmt.Fprintf(os.Stderr, "usage: %s\nrun 'apiguard %s -h' for its flags\n", c.synopsis(), c.name)
		}
		stop()
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "apiguard %s: %v\n", os.Args[1], err)
		stop()
		os.Exit(1)
	}
}

// run runs the command cmd with its arguments. A group's help (replay
// -h) is printed here; a command's own (block -h) by its flag set.
func run(ctx context.Context, cmd string, args []string, out io.Writer) error {
	switch cmd {
	case "help", "-h", "-help", "--help":
		if len(args) > 0 {
			if c := lookupCommand(strings.Join(args, " ")); c != nil {
				if isGroup(c.name) {
					printHelp(out, c.name, nil)
					return nil
				}
				return run(ctx, args[0], append(slices.Clone(args[1:]), "-h"), out)
			}
			return fmt.Errorf("%w: no command %q (apiguard --help lists them)", errUsage, strings.Join(args, " "))
		}
		printUsage(out)
		return nil
	}
	c := lookupCommand(cmd)
	if c == nil || c.run == nil {
		return fmt.Errorf("%w: unknown command %q (want %s)", errUsage, cmd, strings.Join(topNames(), ", "))
	}
	if isGroup(cmd) {
		if len(args) == 0 {
			return fmt.Errorf("%w: apiguard %s needs a command:\n%s", errUsage, cmd, groupList(cmd))
		}
		if isHelpArg(args[0]) {
			printHelp(out, cmd, nil)
			return nil
		}
		// A subcommand without flags of its own answers -h here.
		if sub := lookupCommand(cmd + " " + args[0]); sub != nil && sub.noFlags && hasHelpArg(args[1:]) {
			printHelp(out, sub.name, nil)
			return nil
		}
	}
	return c.run(ctx, args, out)
}

// isHelpArg reports whether a is one of the ways to ask for help.
func isHelpArg(a string) bool {
	switch a {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// hasHelpArg reports whether args ask for help before a "--".
func hasHelpArg(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a != "help" && isHelpArg(a) {
			return true
		}
	}
	return false
}

// common are the flags every command that reads the config has.
type common struct {
	fs       *flag.FlagSet
	config   string
	nats     string
	logLevel string
	natsAuth NATSAuth
}

func newCommon(name string) *common {
	c := &common{fs: newFlagSet(name)}
	c.fs.StringVar(&c.config, "config", "", "YAML config file (see docs/configuration.md)")
	c.fs.StringVar(&c.nats, "nats", "", "NATS URL, e.g. nats://127.0.0.1:4222, nats://user:password@host:4222 or tls://host:4222 (overrides nats.url and $APIGUARD_NATS_URL)")
	c.fs.StringVar(&c.natsAuth.CredsFile, "nats-creds", "", "NATS credentials file, user JWT and nkey seed (overrides nats.creds_file)")
	c.fs.StringVar(&c.natsAuth.NKeySeedFile, "nats-nkey", "", "NATS user nkey seed file (overrides nats.nkey_seed_file)")
	c.fs.StringVar(&c.natsAuth.TLS.CAFile, "nats-ca", "", "CA certificates that sign the NATS server's, PEM (overrides nats.tls.ca_file)")
	c.fs.StringVar(&c.natsAuth.TLS.CertFile, "nats-cert", "", "client certificate for NATS, PEM (overrides nats.tls.cert_file)")
	c.fs.StringVar(&c.natsAuth.TLS.KeyFile, "nats-key", "", "the client certificate's key, PEM (overrides nats.tls.key_file)")
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

// parse parses the flags, before, between or after the arguments.
func (c *common) parse(args []string) error { return parseArgs(c.fs, args) }

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
	c.natsAuth.over(&cfg.NATS.Auth)
	if c.logLevel != "" {
		cfg.Log.Level = c.logLevel
	}
	if set != nil {
		set(&cfg)
	}
	if err := cfg.ClickHouse.applyDSN(); err != nil {
		return Config{}, fmt.Errorf("invalid config: %w", err)
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

// commands is the command table: run dispatches on it and the help is
// printed from it. A subcommand ("replay capture") is listed after its
// group ("replay"), whose run dispatches to it; its own run is nil. A new
// command is one line here.
var commands []command

func init() {
	commands = []command{
		{name: "up", args: "[--demo] [--for D] [flags]", run: cmdUp,
			summary: "run everything in one process: embedded NATS (or --nats), proxy, pipeline, responder; --demo adds a demo API and traffic with an attacker"},
		{name: "proxy", args: "--nats URL [flags]", run: withoutOut(cmdProxy), summary: "run the enforcing proxy against NATS"},
		{name: "pipeline", args: "--nats URL [--clickhouse DSN|HOST:PORT] [flags]", run: withoutOut(cmdPipeline),
			summary: "run the detection pipeline and responder against NATS, storing to ClickHouse"},
		{name: "migrate", args: "--clickhouse DSN|HOST:PORT [flags]", run: cmdMigrate, summary: "create or update the ClickHouse schema"},
		{name: "block", args: "[flags] KIND VALUE", run: cmdBlock, more: kindHelp,
			summary: "block a principal for --ttl (or throttle or revoke it: --action)"},
		{name: "unblock", args: "[flags] KIND VALUE", run: cmdUnblock, more: kindHelp, summary: "remove a principal's block, throttle or revocation"},
		{name: "allow", args: "[flags] KIND VALUE", run: cmdAllow, more: kindHelp,
			summary: "never block a principal (nor what an ip or cidr entry covers)"},
		{name: "unallow", args: "[flags] KIND VALUE", run: cmdUnallow, more: kindHelp, summary: "remove an allow entry"},
		{name: "blocks", args: "[--output table|json] [flags]", run: cmdBlocks, summary: "list the enforcement entries"},
		{name: "anomalies", args: "[--since D] [--principal P] [--api A] [--limit N] [--output table|json] [flags]", run: cmdAnomalies,
			summary: "the latest anomalies, from the anomaly stream"},
		{name: "keys", args: "COMMAND", run: cmdKeys, summary: "API keys"},
		{name: "keys new", args: "--id ID [--plan P] [--scopes a,b]", summary: "print a new API key once, and its entry for the key store"},
		{name: "secrets", args: "COMMAND", run: func(ctx context.Context, args []string, out io.Writer) error {
			return cmdSecrets(ctx, args, os.Stdin, out)
		}, summary: "the sealed secret vault (proxy.secrets)"},
		{name: "secrets set", args: "[flags] NAME", summary: "seal a value read from standard input"},
		{name: "secrets list", args: "[--output table|json] [flags]", summary: "the vault's secrets: names and dates, never values"},
		{name: "secrets rotate", args: "--new-key-file F [flags]", summary: "reseal every secret under a new master key"},
		{name: "secrets master-key", args: "", noFlags: true, summary: "print a fresh random master key"},
		{name: "replay", args: "COMMAND", run: func(_ context.Context, args []string, out io.Writer) error { return cmdReplay(args, out) },
			summary: "synthetic traffic, captures, backtests and replays (docs/replay.md)"},
		{name: "replay generate", args: "--seed N --out FILE [--hours H] [--scale S] [--campaigns C]",
			summary: "labelled synthetic traffic: a day of a shop's users, apps, partners and batch jobs, with every attack kind"},
		{name: "replay backtest", args: "[flags] FILE", summary: "run the detectors on a capture on event time: precision, recall, time to detect, whom the responder would block"},
		{name: "replay import", args: "--format combined|nginx|json|har|raw-http --out FILE [flags] FILE...",
			summary: "access logs, HAR files or raw HTTP requests as events, named as the proxy of --config would name them"},
		{name: "replay capture", args: "--out FILE [--since D|T] [--until D|T] [--api A] [--principal kind:value] [--from stream|clickhouse] [flags]",
			summary: "the events of a time range, from the stream or ClickHouse, as a capture in event-time order"},
		{name: "replay send", args: "--target URL [--speed 1|10|max] [flags] FILE",
			summary: "re-send a capture's requests to a running proxy, each principal's in order, at the capture's pace times --speed"},
		{name: "policy", args: "COMMAND", run: func(_ context.Context, args []string, out io.Writer) error { return cmdPolicy(args, out) },
			summary: "response policies (docs/response.md)"},
		{name: "policy test", args: "[--config F] [--output table|json] [--limit N] [flags] FILE",
			summary: "what each rule of the policy would do on a capture: actions by rule and by day, and any legitimate principal acted on"},
		{name: "check-config", args: "[--config F] [flags]", run: func(_ context.Context, args []string, out io.Writer) error {
			return cmdCheckConfig(args, out)
		}, summary: "validate a config file and print the effective config (secrets redacted)"},
		{name: "demo-upstream", args: "[--listen ADDR]", run: withoutOut(cmdDemoUpstream), summary: "run the demo API alone (for benchmarks)"},
		{name: "demo-traffic", args: "[--target URL] [--clients N] [--attackers N] [--attack-after D] [--for D]", run: cmdDemoTraffic,
			summary: "send the demo's clients and attackers to a proxy in front of the demo API (docker-compose.yml's demo profile)"},
	}
}

// kindHelp explains the KIND argument of the operator commands.
const kindHelp = "KIND is one of ip, cidr, key, token, sub, fp; VALUE an address, a network (10.0.0.0/8), an API key id, a token id, a subject or a fingerprint."

// withoutOut adapts a command that prints nothing on standard output.
func withoutOut(f func(context.Context, []string) error) func(context.Context, []string, io.Writer) error {
	return func(ctx context.Context, args []string, _ io.Writer) error { return f(ctx, args) }
}
