package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// bulkRate is the write rate a bulk block's timeout allows for, well
// under what PutBulk reaches, so that a large list is not cut short.
const bulkRate = 20_000

// blockFile is 'apiguard block --file F': the sanction ak on every
// principal listed in F ("-" for standard input; the format is
// enforce.ParseList's), written in one go and audited as one action.
// Principals that an allow entry covers are spared and counted. A bad line
// is a usage error naming the line, and nothing is written.
func blockFile(ctx context.Context, cfg Config, ak event.ActionKind, path string, ttl time.Duration, reason string, args []string, out io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: --file takes no KIND VALUE arguments, got %q", errUsage, strings.Join(args, " "))
	}
	name := filepath.Base(path)
	var r io.Reader = os.Stdin
	if path == "-" {
		name = "stdin"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("%w: --file: %w", errUsage, err)
		}
		defer f.Close()
		r = f
	}
	keys, err := enforce.ParseList(r, name)
	if err != nil {
		return fmt.Errorf("%w: --file: %w", errUsage, err)
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: --file: %s lists no principals", errUsage, name)
	}
	d := responder.BulkDecision{Kind: ak, Targets: keys, TTL: ttl, Reason: reason, Actor: operatorName(), Source: name}
	ctx, cancel := context.WithTimeout(ctx, operatorTimeout+time.Duration(len(keys)/bulkRate)*time.Second)
	defer cancel()
	env, err := openOperator(ctx, cfg)
	if err != nil {
		return err
	}
	defer env.close()
	// The allow entries, read once from the bucket's stream (fast for a
	// large bucket), rather than per principal.
	allows, err := loadAllows(ctx, env)
	if err != nil {
		return err
	}
	env.resp.Allows = allows
	start := time.Now()
	res, err := env.resp.ApplyBulk(ctx, d)
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Fprintf(out, "%s %d principals from %s until %s: %d written in %s (%.0f/s)", ak.Name(), len(keys), name,
		expiresText(time.Now().Add(ttl)), res.Written, took.Round(time.Millisecond), float64(res.Written)/max(took.Seconds(), 1e-6))
	if res.Duplicates > 0 {
		fmt.Fprintf(out, ", %d listed twice", res.Duplicates)
	}
	fmt.Fprintln(out)
	for _, k := range res.Spared {
		fmt.Fprintf(out, "spared %s: an allow entry covers it (apiguard unallow to lift it)\n", k)
	}
	return nil
}

// loadAllows returns a Matcher holding the bucket's entries, for the
// allow entries among them.
func loadAllows(ctx context.Context, env *operatorEnv) (*enforce.Matcher, error) {
	bucket, err := topology.Bucket(ctx, env.js)
	if err != nil {
		return nil, err
	}
	m := enforce.NewMatcher()
	w := kv.NewWatcher(kv.Bucket(env.js, bucket), m, newLogger(Config{}.Log, io.Discard))
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); <-done }()
	for !w.Synced() {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reading the allow entries: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return m, nil
}
