package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apiguard/apiguard/replay"
)

const replaySendUsage = `apiguard replay send FILE --target URL [--speed 1|10|max] [--concurrency N]
                                [--keys FILE | --key-suffix S] [--forwarded-for] [--echo-header H]
                                [--limit N] [--config F]
                                re-send captured requests to a running proxy, each principal's in
                                order at the capture's pace times --speed; statuses, refusals,
                                latency percentiles, then one JSON line (docs/replay.md)`

// replaySend re-sends a capture's requests to a proxy (replay.Send).
func replaySend(args []string, out io.Writer) error {
	c := newCommon("replay send")
	target := c.fs.String("target", "", "base URL of the proxy, e.g. http://127.0.0.1:8080")
	speed := c.fs.String("speed", "1", "1 keeps the capture's pace, 10 is ten times faster, max does not wait")
	conc := c.fs.Int("concurrency", 8, "requests in flight (each principal's requests stay in order)")
	keys := c.fs.String("keys", "", "file of whole API keys, one \"<id>.<secret>\" a line, sent for the captured key ids")
	suffix := c.fs.String("key-suffix", "replay", "secret sent as \"<id>.<suffix>\" for a key id not in --keys")
	xff := c.fs.Bool("forwarded-for", false, "send the captured client address in X-Forwarded-For (the target must trust the sender: proxy.trusted_proxies)")
	limit := c.fs.Int("limit", 0, "stop after this many requests (0: all)")
	echo := c.fs.String("echo-header", "", "send the captured status and size in this header, for a stub upstream that answers with them")
	var file string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		file, args = args[0], args[1:]
	}
	cfg, err := c.load(args, func(*Config) {})
	if err != nil {
		return err
	}
	if file == "" && c.fs.NArg() == 1 {
		file = c.fs.Arg(0)
	}
	if file == "" || *target == "" {
		return fmt.Errorf("%w: want a capture FILE and --target URL:\n%s", errUsage, replaySendUsage)
	}
	sc := replay.SendConfig{Target: *target, Concurrency: *conc, APIKeyHeader: cfg.Proxy.APIKeyHeader,
		KeySuffix: *suffix, ForwardedFor: *xff, Limit: *limit, EchoHeader: *echo}
	if *speed != "max" {
		if sc.Speed, err = strconv.ParseFloat(*speed, 64); err != nil || !(sc.Speed > 0) {
			return fmt.Errorf("%w: --speed %q, want a number above 0 or max", errUsage, *speed)
		}
	}
	if *keys != "" {
		if sc.Keys, err = readKeyList(*keys); err != nil {
			return err
		}
	}
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		sc.Progress = func(r replay.Report) {
			fmt.Fprintf(os.Stderr, "\r%d sent, %d refused, %d errors, %s ", r.Sent, r.Refused, r.Errors, r.Elapsed.Round(time.Second))
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("opening capture: %w", err)
	}
	defer f.Close()
	r, err := replay.NewReader(f, file)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := replay.Send(ctx, r, sc)
	if sc.Progress != nil {
		fmt.Fprintln(os.Stderr)
	}
	if rep != nil {
		fmt.Fprintln(out, rep.Summary())
		b, _ := json.Marshal(rep)
		fmt.Fprintf(out, "%s\n", b)
	}
	return err
}

// readKeyList reads whole API keys, one a line ("#" starts a comment),
// keyed by their id (what precedes the first "."). The keys are secrets:
// they are sent, never printed.
func readKeyList(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading --keys: %w", err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		id, secret, ok := strings.Cut(line, ".")
		if !ok || id == "" || secret == "" {
			return nil, fmt.Errorf("--keys %s line %d: want \"<id>.<secret>\"", path, n)
		}
		keys[id] = line
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading --keys %s: %w", path, err)
	}
	return keys, nil
}
