package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/replay"
)

const replayUsage = `apiguard replay generate --seed N --out FILE [--hours H] [--scale S] [--campaigns C]
                                labelled synthetic traffic: a day of a shop's users, apps,
                                partners and batch jobs, with every attack kind
apiguard replay backtest FILE [--config F] [--compare OLD] [--partitions N] [--openapi F|none]
                                run the detectors on event time; per-detector precision,
                                recall and time to detect, whom the responder would block
                                (side by side with the OLD config's), then one JSON line
apiguard replay import --format combined|nginx|json|har|raw-http FILE… --out FILE
                       [--config F] [--log-format S] [--fields F=KEY,…] [--start T] [--interval D]
                                access logs, HAR files or raw HTTP requests as events, named
                                as the proxy of --config would have named them
apiguard replay capture --since 24h|T [--until D|T] [--api A] [--principal kind:value] --out FILE
                        [--from stream|clickhouse] [--config F] [--nats URL] [--clickhouse ADDR]
                                the events of a time range, from the stream (the capture
                                buffer) or from ClickHouse, as a capture in event-time order`

// cmdReplay generates labelled traffic and backtests the detectors on it.
func cmdReplay(args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w:\n%s\n%s", errUsage, replayUsage, replaySendUsage)
	}
	switch args[0] {
	case "generate":
		return replayGenerate(args[1:], out)
	case "backtest":
		return replayBacktest(args[1:], out)
	case "send":
		return replaySend(args[1:], out)
	case "import":
		return replayImport(args[1:], out, os.Stderr)
	case "capture":
		return replayCapture(args[1:], out, os.Stderr)
	}
	return fmt.Errorf("%w: unknown replay command %q:\n%s\n%s", errUsage, args[0], replayUsage, replaySendUsage)
}

func replayGenerate(args []string, out io.Writer) error {
	fs := newFlagSet("replay generate")
	cfg := replay.DefaultGenConfig()
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed: the same seed gives the same file")
	path := fs.String("out", "", "capture file to write")
	hours := fs.Float64("hours", cfg.Duration.Hours(), "hours of traffic (at least 4)")
	fs.Float64Var(&cfg.Scale, "scale", cfg.Scale, "multiplier of the normal population")
	fs.IntVar(&cfg.Campaigns, "campaigns", cfg.Campaigns, "campaigns of each attack kind")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: want --out FILE and no other arguments", errUsage)
	}
	cfg.Duration = time.Duration(*hours * float64(time.Hour))
	f, err := os.Create(*path)
	if err != nil {
		return fmt.Errorf("creating capture: %w", err)
	}
	w, err := replay.NewWriter(f)
	if err != nil {
		f.Close()
		return err
	}
	st, err := replay.Generate(cfg, w)
	if err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing capture %s: %w", *path, err)
	}
	fmt.Fprintf(out, "wrote %s: %d events, %d labelled, campaigns %v\n", *path, st.Events, st.Labelled, st.Campaigns)
	return nil
}

func replayBacktest(args []string, out io.Writer) error {
	c := newCommon("replay backtest")
	partitions := c.fs.Int("partitions", 0, "engines, principals split as the pipeline splits them (default nats.partitions)")
	verbose := c.fs.Bool("v", false, "also print every anomaly on an unlabelled event")
	dump := c.fs.String("anomalies", "", "also write every anomaly, as JSON lines, to this file")
	openapi := c.fs.String("openapi", "", "declared inventory for the shadow-API detector (default: the generated shop's; none for none)")
	compare := c.fs.String("compare", "", "old config file: also run it on the same traffic and print, side by side, whom each flags and would block")
	// The file comes first or last: flags may follow it.
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
	if file == "" {
		return fmt.Errorf("%w: want a capture FILE", errUsage)
	}
	n := *partitions
	if n == 0 {
		n = cfg.NATS.Partitions
	}
	res, err := backtestWith(file, cfg, *openapi, n)
	if err != nil {
		return err
	}
	if *compare != "" {
		oldCfg, err := loadConfigFile(*compare)
		if err != nil {
			return err
		}
		old, err := backtestWith(file, oldCfg, *openapi, n)
		if err != nil {
			return fmt.Errorf("backtest of --compare %s: %w", *compare, err)
		}
		res.Compare = replay.Compare(res.Verdicts, old.Verdicts, old)
	}
	if *dump != "" {
		if err := writeAnomalies(*dump, res.Anomalies); err != nil {
			return err
		}
	}
	if *verbose {
		for _, a := range res.Unlabelled {
			fmt.Fprintf(out, "unlabelled %s %s %s:%s %s\n", time.Unix(0, a.TimeUnixNano).UTC().Format(time.TimeOnly), a.Detector,
				a.Principal.GetKind(), a.Principal.GetValue(), a.Summary)
		}
	}
	printBacktest(out, res)
	return nil
}

// writeAnomalies writes anomalies as protojson lines.
func writeAnomalies(path string, as []*event.Anomaly) error {
	var b []byte
	for _, a := range as {
		j, err := protojson.Marshal(a)
		if err != nil {
			return fmt.Errorf("encoding anomaly %s: %w", a.Id, err)
		}
		b = append(append(b, j...), '\n')
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing anomalies: %w", err)
	}
	return nil
}

func parseFlags(fs *flag.FlagSet, args []string) error { return parseArgs(fs, args) }

// printBacktest prints the human-readable table, then the JSON line.
func printBacktest(out io.Writer, res *replay.Result) {
	rate := float64(res.Events) / max(res.DetectorTime.Seconds(), 1e-9)
	fmt.Fprintf(out, "%d events (%d labelled), %d anomalies; detectors took %s (%.0f events/s)\n",
		res.Events, res.Labelled, len(res.Anomalies), res.DetectorTime.Round(time.Millisecond), rate)
	fmt.Fprintf(out, "%-20s %9s %9s %7s %10s %9s %14s\n", "detector", "precision", "recall", "found", "campaigns", "anomalies", "median detect")
	names := make([]string, 0, len(res.Detectors))
	for n := range res.Detectors {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		d := res.Detectors[n]
		med := "-"
		if d.MedianDetectS != nil {
			med = fmt.Sprintf("%.0fs", *d.MedianDetectS)
		}
		fmt.Fprintf(out, "%-20s %9.3f %9.3f %7d %10d %9d %14s\n", n, d.Precision, d.Recall, d.Detected, d.Campaigns, d.Anomalies, med)
	}
	unscored := make([]string, 0, len(res.Unscored))
	for n := range res.Unscored {
		unscored = append(unscored, n)
	}
	slices.Sort(unscored)
	for _, n := range unscored {
		fmt.Fprintf(out, "%-20s %d anomalies (%d on unlabelled events); no attack kind of its own\n", n, res.Unscored[n], res.UnscoredFalsePos[n])
	}
	missed := make([]string, 0, len(res.Missed))
	for l := range res.Missed {
		missed = append(missed, l)
	}
	slices.Sort(missed)
	for _, l := range missed {
		fmt.Fprintf(out, "missed %s (flagged by %v)\n", l, res.Missed[l])
	}
	if len(res.FalsePositives) > 0 {
		fmt.Fprintf(out, "legitimate principals flagged: %v\n", res.FalsePositives)
	}
	switch {
	case res.Compare != nil:
		printComparison(out, res.Verdicts, res.Compare)
	case res.Labelled == 0 && res.Verdicts != nil:
		printVerdicts(out, res.Verdicts)
	}
	b, _ := json.Marshal(res)
	fmt.Fprintf(out, "%s\n", b)
}
