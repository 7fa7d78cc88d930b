package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/apiguard/apiguard/replay"
)

// replayImport reads access logs, HAR files or raw HTTP into a capture.
// The summary goes to out; each input that does not parse to report.
func replayImport(args []string, out, report io.Writer) error {
	c := newCommon("replay import")
	def := replay.DefaultImportConfig()
	format := c.fs.String("format", "", "input format: "+strings.Join(replay.Formats(), ", "))
	path := c.fs.String("out", "", "capture file to write")
	logFormat := c.fs.String("log-format", "", "nginx log_format string, for --format nginx (default: nginx's combined)")
	fields := c.fs.String("fields", "", "JSON lines: event field=JSON key, comma-separated (e.g. time=ts,target=uri)")
	start := c.fs.String("start", def.Start.Format(time.RFC3339), "time of the first request of formats without timestamps (raw-http)")
	interval := c.fs.Duration("interval", def.Interval, "time between requests of formats without timestamps")
	partitions := c.fs.Int("partitions", 0, "event partitions (default nats.partitions)")
	files, err := parseInterleaved(c.fs, args)
	if err != nil {
		return err
	}
	cfg, err := c.build(nil)
	if err != nil {
		return err
	}
	if *format == "" || *path == "" || len(files) == 0 {
		return fmt.Errorf("%w: want --format F, --out FILE and at least one input FILE", errUsage)
	}
	ic := def
	ic.Format, ic.Proxy, ic.Partitions, ic.LogFormat, ic.Interval, ic.Report = *format, cfg.Proxy, cfg.NATS.Partitions, *logFormat, *interval, report
	if *partitions > 0 {
		ic.Partitions = *partitions
	}
	if ic.Start, err = time.Parse(time.RFC3339, *start); err != nil {
		return fmt.Errorf("%w: --start: %v", errUsage, err)
	}
	if *fields != "" {
		ic.Fields = map[string]string{}
		for _, kv := range strings.Split(*fields, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" || v == "" {
				return fmt.Errorf("%w: --fields: %q, want field=key", errUsage, kv)
			}
			ic.Fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	var inputs []replay.Input
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("opening input: %w", err)
		}
		defer f.Close()
		inputs = append(inputs, replay.Input{Name: name, R: f})
	}
	o, err := os.Create(*path)
	if err != nil {
		return fmt.Errorf("creating capture: %w", err)
	}
	w, err := replay.NewWriter(o)
	if err != nil {
		o.Close()
		return err
	}
	began := time.Now()
	sum, err := replay.Import(ic, inputs, w)
	if err != nil {
		o.Close()
		return err
	}
	if err := o.Close(); err != nil {
		return fmt.Errorf("writing capture %s: %w", *path, err)
	}
	took := time.Since(began)
	fmt.Fprintf(out, "wrote %s in %s (%.0f lines/s)\n%s", *path, took.Round(time.Millisecond),
		float64(sum.Inputs())/max(took.Seconds(), 1e-9), sum)
	if sum.Written == 0 {
		return fmt.Errorf("import: no request in the input could be read as %s", *format)
	}
	return nil
}

// parseInterleaved parses fs from args where flags and positional
// arguments mix ("FILE --out X FILE2"), and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
