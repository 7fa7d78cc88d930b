package detectors

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/event"
)

var (
	update = flag.Bool("update", false, "rewrite testdata/*/*/want.json from the detectors' output")
	gen    = flag.Bool("gen", false, "regenerate testdata/rate/*/events.jsonl from the flows in rateCases")
)

// rateCases are the scenarios behind testdata/rate: the flows that -gen
// renders to events.jsonl. The files, not these flows, are what the test reads.
var rateCases = map[string][]flow{
	"attacker-on-orders": append(normal("POST /orders", 12, 0.3, 45*time.Second),
		flow{api: "POST /orders", key: "attacker", rate: 8, from: 30 * time.Second, to: 45 * time.Second}),
	"higher-floor": append(normal("POST /orders", 12, 0.3, 45*time.Second),
		flow{api: "POST /orders", key: "attacker", rate: 8, from: 30 * time.Second, to: 45 * time.Second}),
	"busy-search-is-normal": append(normal("GET /search", 12, 3, 45*time.Second),
		flow{api: "GET /search", key: "busy", rate: 4, from: 30 * time.Second, to: 45 * time.Second}),
	"same-rate-two-apis": append(append(normal("POST /orders", 12, 0.3, 45*time.Second), normal("GET /search", 12, 3, 45*time.Second)...),
		flow{api: "POST /orders", key: "mixed", rate: 3, from: 30 * time.Second, to: 45 * time.Second},
		flow{api: "GET /search", key: "mixed", rate: 3, from: 30 * time.Second, to: 45 * time.Second}),
}

// anomalyJSON is the stable JSON form of an anomaly in want.json files.
type anomalyJSON struct {
	ID         string      `json:"id"`
	Time       string      `json:"time"`
	Detector   string      `json:"detector"`
	API        string      `json:"api"`
	Principal  string      `json:"principal"`
	Score      float64     `json:"score"`
	Severity   string      `json:"severity"`
	Deviations []deviation `json:"deviations"`
	EventIDs   []string    `json:"event_ids"`
	Summary    string      `json:"summary"`
}

type deviation struct {
	Feature   string  `json:"feature"`
	Observed  float64 `json:"observed"`
	Expected  float64 `json:"expected"`
	Deviation float64 `json:"deviation"`
}

// TestRateCases replays each testdata/rate/<case>/events.jsonl on event
// time with the case's config.yaml and compares the anomalies, byte for
// byte, with want.json. Run with -update after a deliberate change.
func TestRateCases(t *testing.T) {
	if *gen {
		for name, flows := range rateCases {
			writeEvents(t, filepath.Join("testdata", "rate", name, "events.jsonl"), traffic(42, flows))
		}
	}
	dirs, err := filepath.Glob(filepath.Join("testdata", "rate", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases in testdata/rate: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg := DefaultRateConfig()
			if b, err := os.ReadFile(filepath.Join(dir, "config.yaml")); err == nil {
				dec := yaml.NewDecoder(bytes.NewReader(b))
				dec.KnownFields(true)
				if err := dec.Decode(&cfg); err != nil {
					t.Fatalf("%s/config.yaml: %v", dir, err)
				}
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("%s/config.yaml: %v", dir, err)
			}
			d := NewRate(cfg)
			var got []anomalyJSON
			for _, ev := range readEvents(t, filepath.Join(dir, "events.jsonl")) {
				for _, a := range d.Observe(ev) {
					got = append(got, toJSON(a))
				}
			}
			out, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, '\n')
			wantPath := filepath.Join(dir, "want.json")
			if *update {
				if err := os.WriteFile(wantPath, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("anomalies differ from %s (run with -update if the change is deliberate):\ngot:\n%s", wantPath, out)
			}
		})
	}
}

func toJSON(a *event.Anomaly) anomalyJSON {
	j := anomalyJSON{ID: a.Id, Time: time.Unix(0, a.TimeUnixNano).UTC().Format(time.RFC3339Nano), Detector: a.Detector,
		API: a.Api, Principal: a.Principal.GetKind() + ":" + a.Principal.GetValue(), Score: round(a.Score),
		Severity: a.Severity.String(), EventIDs: a.EventIds, Summary: a.Summary}
	for _, d := range a.Deviations {
		j.Deviations = append(j.Deviations, deviation{d.Feature, round(d.Observed), round(d.Expected), round(d.Deviation)})
	}
	return j
}

func round(f float64) float64 {
	var r float64
	_, _ = fmt.Sscanf(fmt.Sprintf("%.6g", f), "%g", &r)
	return r
}

func readEvents(t *testing.T, path string) []*event.RequestEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []*event.RequestEvent
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var ev event.RequestEvent
		if err := protojson.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		evs = append(evs, &ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return evs
}

func writeEvents(t *testing.T, path string, evs []*event.RequestEvent) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, ev := range evs {
		ev.Schema = event.SchemaVersion
		b, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		// protojson's spacing is deliberately unstable; compact it.
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			t.Fatal(err)
		}
		buf.Write(c.Bytes())
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
