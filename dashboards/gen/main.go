// Command gen writes apiguard's dashboards as JSON, one file per
// dashboard named <uid>.json, after checking them with the dashboards'
// lint. `make dashboards` runs it into dashboards/json; the staleness
// check in `make test` runs it into a temporary directory and compares.
//
// Usage:
//
//	go run ./dashboards/gen [-out DIR]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apiguard/apiguard/dashboards"
)

func main() {
	out := flag.String("out", "dashboards/json", "directory to write <uid>.json into")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "dashboards:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	ds, err := dashboards.All()
	if err != nil {
		return err
	}
	if errs := dashboards.Lint(ds); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, "dashboards: lint:", e)
		}
		return fmt.Errorf("%d lint errors", len(errs))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, d := range ds {
		b, err := dashboards.Marshal(d)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, *d.Uid+".json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}
