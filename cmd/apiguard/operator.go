package main

import (
	"cmp"
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
	"github.com/apiguard/apiguard/pipeline/topology"
)

// operatorTimeout bounds each operator command's NATS work.
const operatorTimeout = 15 * time.Second

// operatorEnv is what block, unblock, allow, unallow and blocks use: the
// bucket's writer and the audit stream.
type operatorEnv struct {
	js     jetstream.JetStream
	writer *kv.Writer
	audit  *topology.Publisher
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
	nc, js, err := connect(ctx, url, "apiguard-operator", 0, false, log)
	if err != nil {
		return nil, err
	}
	bucket, err := topology.Bucket(ctx, js)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &operatorEnv{js: js, writer: kv.NewWriter(js, bucket), audit: topology.NewPublisher(js), close: nc.Close}, nil
}

func operatorName() string {
	if u, err := user.Current(); err == nil {
		return "operator:" + u.Username
	}
	return "operator"
}

func parseTarget(args []string) (enforce.Kind, string, error) {
	if len(args) != 2 {
		return 0, "", fmt.Errorf("%w: want KIND VALUE, got %d arguments", errUsage, len(args))
	}
	kind, err := enforce.ParseKind(args[0])
	if err != nil {
		return 0, "", fmt.Errorf("%w: %v", errUsage, err)
	}
	v, err := enforce.CanonicalValue(kind, args[1])
	if err != nil {
		return 0, "", fmt.Errorf("%w: %v", errUsage, err)
	}
	return kind, v, nil
}

func cmdBlock(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("block")
	ttl := c.fs.Duration("ttl", time.Hour, "how long the block lasts (0 for until unblocked)")
	reason := c.fs.String("reason", "blocked by an operator", "why, for analysts (never shown to the client)")
	action := c.fs.String("action", "block", "block, throttle or revoke")
	cfg, err := c.load(args, nil)
	if err != nil {
		return err
	}
	kind, value, err := parseTarget(c.fs.Args())
	if err != nil {
		return err
	}
	act, err := enforce.ParseAction(*action)
	if err != nil {
		return fmt.Errorf("%w: --action: %v", errUsage, err)
	}
	if act == enforce.ActionAllow {
		return fmt.Errorf("%w: --action allow: use 'apiguard allow'", errUsage)
	}
	if *ttl != 0 && *ttl < kv.MinTTL {
		return fmt.Errorf("%w: --ttl %s is shorter than %s", errUsage, *ttl, kv.MinTTL)
	}
	kinds := map[enforce.Action]event.ActionKind{enforce.ActionBlock: event.ActionKind_ACTION_BLOCK,
		enforce.ActionThrottle: event.ActionKind_ACTION_THROTTLE, enforce.ActionRevoke: event.ActionKind_ACTION_REVOKE}
	return withOperator(ctx, cfg, func(ctx context.Context, env *operatorEnv) error {
		now := time.Now()
		// An allow entry wins over an operator's block too: the block is
		// audited as dry-run and refused, so that removing the allow is a
		// decision of its own.
		allow, err := allowedBy(ctx, env, kind, value, now)
		if err != nil {
			return err
		}
		if allow != nil {
			why := allowText(allow, kind, value)
			if err := audit(ctx, env, kinds[act], kind, value, *ttl, why+"; "+*reason, true); err != nil {
				return err
			}
			return fmt.Errorf("%s %s not %s: %s (recorded as dry-run); to %s it, remove the allow entry first: apiguard unallow %s %s",
				kind, value, pastTense(act), why, act, allow.Kind, allow.Value)
		}
		e := enforce.Entry{Kind: kind, Value: value, Action: act, Reason: *reason, Actor: operatorName(), Created: now}
		if *ttl > 0 {
			e.Expires = now.Add(*ttl)
		}
		if _, err := env.writer.Put(ctx, e, now); err != nil {
			return err
		}
		if err := audit(ctx, env, kinds[act], kind, value, *ttl, *reason, false); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s %s %s until %s\n", act, kind, value, expiresText(e.Expires))
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
	kind, value, err := parseTarget(c.fs.Args())
	if err != nil {
		return err
	}
	if *ttl != 0 && *ttl < kv.MinTTL {
		return fmt.Errorf("%w: --ttl %s is shorter than %s", errUsage, *ttl, kv.MinTTL)
	}
	return withOperator(ctx, cfg, func(ctx context.Context, env *operatorEnv) error {
		now := time.Now()
		prev, _, err := env.writer.Get(ctx, kind, value, now)
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			return err
		}
		replaces := err == nil && prev.Action != enforce.ActionAllow
		e := enforce.Entry{Kind: kind, Value: value, Action: enforce.ActionAllow, Reason: *reason, Actor: operatorName(), Created: now}
		if *ttl > 0 {
			e.Expires = now.Add(*ttl)
		}
		if _, err := env.writer.Put(ctx, e, now); err != nil {
			return err
		}
		if err := audit(ctx, env, event.ActionKind_ACTION_ALLOW, kind, value, *ttl, *reason, false); err != nil {
			return err
		}
		fmt.Fprintf(out, "allowed %s %s until %s\n", kind, value, expiresText(e.Expires))
		if replaces {
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
// removal. Without one it says so and fails (exit 1) with no audit row; a
// removal races no writer (kv.Writer.DeleteRevision).
func removeCmd(ctx context.Context, name, defaultReason string, allow bool, args []string, out io.Writer) error {
	c := newCommon(name)
	reason := c.fs.String("reason", defaultReason, "why, for analysts")
	cfg, err := c.load(args, nil)
	if err != nil {
		return err
	}
	kind, value, err := parseTarget(c.fs.Args())
	if err != nil {
		return err
	}
	return withOperator(ctx, cfg, func(ctx context.Context, env *operatorEnv) error {
		e, rev, err := env.writer.Get(ctx, kind, value, time.Now())
		if err != nil {
			return err
		}
		switch isAllow := e.Action == enforce.ActionAllow; {
		case allow && !isAllow:
			return fmt.Errorf("%s %s has a %s entry, not an allow entry; remove it with: apiguard unblock %s %s", kind, value, e.Action, kind, value)
		case !allow && isAllow:
			return fmt.Errorf("%s %s has an allow entry, not a block; remove it with: apiguard unallow %s %s", kind, value, kind, value)
		}
		if err := env.writer.DeleteRevision(ctx, kind, value, rev); err != nil {
			return err
		}
		ak := event.ActionKind_ACTION_UNBLOCK
		if allow {
			ak = event.ActionKind_ACTION_UNALLOW
		}
		if err := audit(ctx, env, ak, kind, value, 0, *reason, false); err != nil {
			return err
		}
		fmt.Fprintf(out, "%sed %s %s (its %s by %s)\n", name, kind, value, e.Action, e.Actor)
		return nil
	})
}

// allowedBy returns the live allow entry covering a principal (for an
// address, one on a network holding it too), or nil.
func allowedBy(ctx context.Context, env *operatorEnv, kind enforce.Kind, value string, now time.Time) (*enforce.Entry, error) {
	entries, errs := env.writer.List(ctx)
	if len(entries) == 0 && len(errs) > 0 {
		return nil, errs[0]
	}
	m := enforce.NewMatcher()
	m.Replace(entries)
	return m.Allowed(enforce.Key{Kind: kind, Value: value}, now), nil
}

// allowText says which allow entry spares a principal, as the responder does.
func allowText(a *enforce.Entry, kind enforce.Kind, value string) string {
	s := "allowed by " + cmp.Or(a.Actor, "an allow entry")
	if a.Kind != kind || a.Value != value {
		s += " on " + a.Kind.String() + " " + a.Value
	}
	if a.Reason != "" {
		s += " (" + a.Reason + ")"
	}
	return s
}

func pastTense(a enforce.Action) string {
	switch a {
	case enforce.ActionThrottle:
		return "throttled"
	case enforce.ActionRevoke:
		return "revoked"
	}
	return "blocked"
}

func audit(ctx context.Context, env *operatorEnv, kind event.ActionKind, target enforce.Kind, value string, ttl time.Duration, reason string, dryRun bool) error {
	now := time.Now()
	return env.audit.WriteAction(ctx, &event.Action{
		Schema: event.SchemaVersion, Id: event.NewID(now), TimeUnixNano: now.UnixNano(), Kind: kind,
		Target: &event.Principal{Kind: target.String(), Value: value}, TtlSeconds: int64(ttl / time.Second),
		Reason: reason, Actor: operatorName(), DryRun: dryRun,
	})
}

func cmdBlocks(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("blocks")
	cfg, err := c.load(args, nil)
	if err != nil {
		return err
	}
	return withOperator(ctx, cfg, func(ctx context.Context, env *operatorEnv) error {
		return listEntries(ctx, env, out)
	})
}

func listEntries(ctx context.Context, env *operatorEnv, out io.Writer) error {
	entries, errs := env.writer.List(ctx)
	slices.SortFunc(entries, func(a, b enforce.Entry) int { return a.Created.Compare(b.Created) })
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVALUE\tACTION\tEXPIRES\tACTOR\tREASON")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Kind, e.Value, e.Action, expiresText(e.Expires), e.Actor, oneLine(e.Reason, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, err := range errs {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
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
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("printing config: %w", err)
	}
	fmt.Fprintf(out, "# config is valid\n%s", b)
	return nil
}
