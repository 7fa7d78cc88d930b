package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// operatorTimeout bounds each operator command's NATS work.
const operatorTimeout = 15 * time.Second

// operatorEnv is what block, unblock, allow, unallow and blocks use: the
// bucket's writer and the responder, through which every action goes.
type operatorEnv struct {
	js     jetstream.JetStream
	writer *kv.Writer
	resp   *responder.Responder
	close  func()
}

// withOperator runs f with an operator environment, bounded by operatorTimeout.
func withOperator(ctx context.Context, cfg Config, f func(context.Context, *operatorEnv) error) error {
	ctx, cancel := context.WithTimeout(ctx, operatorTimeout)
	defer cancel()
	env, err := openOperator(ctx, cfg)
	if err != nil {
		return err
	}
	defer env.close()
	return f(ctx, env)
}

func openOperator(ctx context.Context, cfg Config) (*operatorEnv, error) {
	url := cfg.NATS.URL
	if url == "" {
		url = secret.URL("nats://" + cfg.NATS.Listen) // the embedded server of 'apiguard up'
	}
	log := newLogger(cfg.Log, io.Discard)
	nc, js, err := connectOperator(ctx, url, cfg.NATS.Auth, "apiguard-operator", log)
	if err != nil {
		return nil, err
	}
	bucket, err := topology.Bucket(ctx, js)
	if err != nil {
		nc.Close()
		return nil, err
	}
	w := kv.NewWriter(js, bucket)
	// No Allows: the responder reads the allow entries from the bucket
	// before each block, so an allow written a moment ago wins.
	resp := responder.New(cfg.Responder, w, topology.NewPublisher(js), time.Now, log.With("component", "responder"))
	return &operatorEnv{js: js, writer: w, resp: resp, close: nc.Close}, nil
}

func operatorName() string {
	if u, err := user.Current(); err == nil {
		return "operator:" + u.Username
	}
	return "operator"
}

// decision returns the operator's decision of kind k on the principal
// named by args (KIND VALUE), checked before anything is opened: a bad
// argument is a usage error (exit 2).
func decision(k event.ActionKind, args []string, ttl time.Duration, reason string) (responder.Decision, error) {
	if len(args) != 2 {
		return responder.Decision{}, fmt.Errorf("%w: want KIND VALUE, got %d arguments", errUsage, len(args))
	}
	d := responder.Decision{Kind: k, Target: &event.Principal{Kind: args[0], Value: args[1]}, TTL: ttl,
		Reason: reason, Actor: operatorName()}
	if err := d.Validate(); err != nil {
		return responder.Decision{}, fmt.Errorf("%w: %v", errUsage, strings.TrimPrefix(err.Error(), responder.ErrInvalid.Error()+": "))
	}
	return d, nil
}

func cmdBlock(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("block")
	ttl := c.fs.Duration("ttl", time.Hour, "how long the block lasts (0 for until unblocked)")
	reason := c.fs.String("reason", "blocked by an operator", "why, for analysts (never shown to the client)")
	action := c.fs.String("action", "block", "block, throttle or revoke")
	file := c.fs.String("file", "", "block every principal listed in `FILE` (\"-\" for standard input), audited as one action: addresses, networks or \"KIND VALUE\" lines")
	cfg, err := c.load(args, nil)
	if err != nil {
		return err
	}
	ak, err := event.ParseActionKind(*action)
	if err == nil && ak == event.ActionKind_ACTION_ALLOW {
		return fmt.Errorf("%w: --action allow: use 'apiguard allow'", errUsage)
	}
	if err != nil || !ak.Puts() {
		return fmt.Errorf("%w: --action: unknown action %q (want block, throttle or revoke)", errUsage, *action)
	}
	if *file != "" {
		return blockFile(ctx, cfg, ak, *file, *ttl, *reason, c.fs.Args(), out)
	}
	d, err := decision(ak, c.fs.Args(), *ttl, *reason)
	if err != nil {
		return err
	}
	return withOperator(ctx, cfg, func(ctx context.Context, env *operatorEnv) error {
		// An allow entry wins over an operator's block too: the responder
		// audits the block as dry-run and it is refused here, so that
		// removing the allow is a decision of its own.
		res, err := env.resp.Apply(ctx, d)
		if err != nil {
			return err
		}
		t := res.Action.Target
		if a := res.SparedBy; a != nil {
			return fmt.Errorf("%s %s not %s: %s (recorded as dry-run); to %s it, remove the allow entry first: apiguard unallow %s %s",
				t.Kind, t.Value, pastTense(ak), strings.TrimSuffix(res.Action.Reason, "; "+d.Reason), ak.Name(), a.Kind, a.Value)
		}
		fmt.Fprintf(out, "%s %s %s until %s\n", ak.Name(), t.Kind, t.Value, expiresText(res.Entry.Expires))
		return nil
	})
}

func cmdUnblock(ctx context.Context, args []string, out io.Writer) error {
	return removeCmd(ctx, "unblock", "unblocked by an operator", false, args, out)
}

// cmdAllow writes an allow entry: the responder never blocks the principal
// (nor, for an address or network, anything it covers) and the proxy lets
// it through whatever ip or cidr entry covers it (enforce.Matcher.Match).
// It replaces an entry of the same principal, so allowing a blocked key
// also lifts its block.
func cmdAllow(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("allow")
	ttl := c.fs.Duration("ttl", 0, "how long the allow entry lasts (0 for until 'apiguard unallow')")
	reason := c.fs.String("reason", "allowed by an operator", "why (a false positive, a partner's load test), for analysts")
	cfg, err := c.load(args, nil)
	if err != nil {
		return err
	}
	d, err := decision(event.ActionKind_ACTION_ALLOW, c.fs.Args(), *ttl, *reason)
	if err != nil {
		return err
	}
	return withOperator(ctx, cfg, func(ctx context.Context, env *operatorEnv) error {
		res, err := env.resp.Apply(ctx, d)
		if err != nil {
			return err
		}
		t := res.Action.Target
		fmt.Fprintf(out, "allowed %s %s until %s\n", t.Kind, t.Value, expiresText(res.Entry.Expires))
		if prev := res.Previous; prev != nil && prev.Action != enforce.ActionAllow {
			fmt.Fprintf(out, "it replaces the %s by %s: %s\n", prev.Action, prev.Actor, oneLine(prev.Reason, 120))
		}
		return nil
	})
}

func cmdUnallow(ctx context.Context, args []string, out io.Writer) error {
	return removeCmd(ctx, "unallow", "allow entry removed by an operator", true, args, out)
}

// removeCmd is unblock (allow false) and unallow (allow true): it removes
// the principal's entry if it is of the right sort, and audits the
// removal (responder.Apply). Without one it says so and fails (exit 1)
// with no audit row; a removal races no writer (kv.Writer.DeleteRevision).
func removeCmd(ctx context.Context, name, defaultReason string, allow bool, args []string, out io.Writer) error {
	c := newCommon(name)
	reason := c.fs.String("reason", defaultReason, "why, for analysts")
	cfg, err := c.load(args, nil)
	if err != nil {
		return err
	}
	ak := event.ActionKind_ACTION_UNBLOCK
	if allow {
		ak = event.ActionKind_ACTION_UNALLOW
	}
	d, err := decision(ak, c.fs.Args(), 0, *reason)
	if err != nil {
		return err
	}
	return withOperator(ctx, cfg, func(ctx context.Context, env *operatorEnv) error {
		res, err := env.resp.Apply(ctx, d)
		if errors.Is(err, responder.ErrWrongEntry) {
			t := d.Target
			other := "unallow"
			if allow {
				other = "unblock"
			}
			return fmt.Errorf("%w; remove it with: apiguard %s %s %s", err, other, t.Kind, t.Value)
		}
		if err != nil {
			return err
		}
		t, e := res.Action.Target, res.Previous
		fmt.Fprintf(out, "%sed %s %s (its %s by %s)\n", name, t.Kind, t.Value, e.Action, e.Actor)
		return nil
	})
}

func pastTense(k event.ActionKind) string {
	switch k {
	case event.ActionKind_ACTION_THROTTLE:
		return "throttled"
	case event.ActionKind_ACTION_REVOKE:
		return "revoked"
	}
	return "blocked"
}

func cmdBlocks(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("blocks")
	output := outputFlags(c.fs)
	cfg, err := c.load(args, nil)
	if err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, c.fs.Arg(0))
	}
	asJSON, err := output.isJSON()
	if err != nil {
		return err
	}
	return withOperator(ctx, cfg, func(ctx context.Context, env *operatorEnv) error {
		return listEntries(ctx, env, asJSON, out)
	})
}

// entryJSON is an enforcement entry as 'apiguard blocks --json' prints it.
type entryJSON struct {
	Kind      string     `json:"kind"`
	Value     string     `json:"value"`
	Action    string     `json:"action"`
	Reason    string     `json:"reason"`
	AnomalyID string     `json:"anomaly_id,omitempty"`
	Actor     string     `json:"actor"`
	Created   time.Time  `json:"created"`
	Expires   *time.Time `json:"expires"` // null: never
	Rate      float64    `json:"rate,omitempty"`
}

// listEntries prints the bucket's entries, oldest first; malformed ones
// are warnings on standard error.
func listEntries(ctx context.Context, env *operatorEnv, asJSON bool, out io.Writer) error {
	entries, errs := env.writer.List(ctx)
	slices.SortFunc(entries, func(a, b enforce.Entry) int { return a.Created.Compare(b.Created) })
	for _, err := range errs {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
	}
	if asJSON {
		list := make([]entryJSON, 0, len(entries))
		for _, e := range entries {
			j := entryJSON{Kind: e.Kind.String(), Value: e.Value, Action: e.Action.String(), Reason: e.Reason,
				AnomalyID: e.AnomalyID, Actor: e.Actor, Created: e.Created, Rate: e.Rate}
			if !e.Expires.IsZero() {
				j.Expires = &e.Expires
			}
			list = append(list, j)
		}
		return writeJSON(out, list)
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVALUE\tACTION\tEXPIRES\tACTOR\tREASON")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Kind, e.Value, e.Action, expiresText(e.Expires), e.Actor, oneLine(e.Reason, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d entries\n", len(entries))
	return nil
}

func expiresText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format(time.DateTime) + " (in " + time.Until(t).Round(time.Second).String() + ")"
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func cmdCheckConfig(args []string, out io.Writer) error {
	c := newCommon("check-config")
	cfg, err := c.load(args, nil)
	if err != nil {
		return err
	}
	cfg.Responder.Policies = cfg.Responder.EffectivePolicies() // the rules in force, defaults included
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("printing config: %w", err)
	}
	fmt.Fprintf(out, "# config is valid\n%s", b)
	return nil
}
