package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

// outputFormat is how a command prints a list: a table for people, or
// JSON for programs.
type outputFormat struct {
	format string
	json   bool
}

// outputFlags adds --output table|json and its shorthand --json to fs.
func outputFlags(fs *flag.FlagSet) *outputFormat {
	o := &outputFormat{}
	fs.StringVar(&o.format, "output", "table", "table, or json (one JSON document, for scripts)")
	fs.BoolVar(&o.json, "json", false, "short for --output json")
	return o
}

// isJSON reports whether JSON was asked for; an unknown format is a usage
// error.
func (o *outputFormat) isJSON() (bool, error) {
	switch o.format {
	case "table":
		return o.json, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("%w: --output %q, want table or json", errUsage, o.format)
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}
