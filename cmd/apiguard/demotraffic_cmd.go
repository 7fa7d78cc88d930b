package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// cmdDemoTraffic sends the demo's traffic (the clients and attackers of
// `up --demo`) to a proxy that runs elsewhere, as docker-compose.yml's
// demo profile does, until ctx ends or --for passes. It prints when each
// attack starts and when each attacker is first refused.
func cmdDemoTraffic(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("demo-traffic")
	target := c.fs.String("target", "http://127.0.0.1:8080", "base URL of the proxy in front of the demo API")
	clients := c.fs.Int("clients", 60, "normal clients")
	attackers := c.fs.Int("attackers", 1, "attackers, starting one a second")
	attackAfter := c.fs.Duration("attack-after", 30*time.Second, "when the first attacker starts (baselines warm up first)")
	forDur := c.fs.Duration("for", 0, "stop after this long (0: until stopped)")
	if err := c.parse(args); err != nil {
		return err
	}
	if u, err := url.Parse(*target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: --target %q, want an http or https URL", errUsage, *target)
	}
	if *clients < 0 || *attackers < 0 || *attackAfter < 0 || c.fs.NArg() > 0 {
		return fmt.Errorf("%w: want --clients, --attackers and --attack-after of 0 or more, and no arguments", errUsage)
	}
	if *forDur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *forDur)
		defer cancel()
	}
	base := strings.TrimSuffix(*target, "/")
	report := newDemoReport(out, *attackers)
	fmt.Fprintf(out, "demo traffic: %d clients over %d APIs to %s; %d attacker(s) from %s\n",
		*clients, len(demoProfile), base, *attackers, *attackAfter)
	return newDemoTraffic(base, *clients, *attackers, *attackAfter, report).run(ctx)
}
