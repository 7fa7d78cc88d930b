package replay

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
)

// ShopOpenAPI is the declared inventory of the generated shop.
//
//go:embed shop-openapi.yaml
var ShopOpenAPI []byte

// BacktestConfig configures Backtest.
type BacktestConfig struct {
	Detectors detectors.Config
	// Partitions splits principals over this many engines, as the
	// pipeline does (event.Partition), so cross-principal detection sees
	// what it would see in production.
	Partitions int
}

// DetectorResult is one detector's score on labelled traffic.
type DetectorResult struct {
	// Precision is the share of the detector's anomalies whose triggering
	// event belongs to any labelled attack (1 when it raised none).
	Precision float64 `json:"precision"`
	// Recall is the share of the campaigns of the detector's own attack
	// kind in which it raised at least one anomaly on a campaign event.
	Recall float64 `json:"recall"`
	// MedianDetectS is the median, over detected campaigns, of the
	// seconds from the campaign's first event to the first anomaly; null
	// when none was detected.
	MedianDetectS *float64 `json:"median_detect_s"`

	Anomalies     int `json:"-"`
	TruePositives int `json:"-"`
	Campaigns     int `json:"-"`
	Detected      int `json:"-"`
}

// Result is a backtest's outcome. Its JSON form is the last line
// `apiguard replay backtest` prints.
type Result struct {
	Detectors      map[string]*DetectorResult `json:"detectors"`
	MacroPrecision float64                    `json:"macro_precision"`
	MacroRecall    float64                    `json:"macro_recall"`
	// FalsePositivePrincipals counts the distinct clients (not APIs)
	// named by an anomaly that a normal, unlabelled event triggered.
	FalsePositivePrincipals int `json:"false_positive_principals"`
	// FlaggedPrincipals and BlockedPrincipals count the clients an anomaly
	// named and those the responder's policy would have blocked, revoked or
	// throttled; Verdicts says who, by what, when and why. Set by Judge's
	// caller (SetVerdicts).
	FlaggedPrincipals int `json:"flagged_principals"`
	BlockedPrincipals int `json:"blocked_principals"`
	// Compare is, under `backtest --compare`, what the old config made of
	// the same traffic.
	Compare  *Comparison `json:"compare,omitempty"`
	Verdicts Verdicts    `json:"-"`

	Events         int              `json:"-"`
	Labelled       int              `json:"-"`
	Anomalies      []*event.Anomaly `json:"-"`
	FalsePositives []string         `json:"-"` // "kind:value [detectors]", sorted
	// Missed lists, for each campaign its own detector missed, the
	// detectors that did flag its events.
	Missed map[string][]string `json:"-"`
	// Unlabelled are the anomalies an unlabelled event triggered.
	Unlabelled       []*event.Anomaly    `json:"-"`
	DetectorTime     time.Duration       `json:"-"`
	Unscored         map[string]int      `json:"-"` // anomalies of detectors with no attack kind
	UnscoredFalsePos map[string]int      `json:"-"`
	Engines          []*detectors.Engine `json:"-"`

	campaignStart map[string]int64    // label → its first event's time
	firstDetect   map[[2]string]int64 // (detector, label) → first anomaly's time
	labels        map[string]string   // event id → label
}

// Backtest runs the detectors over a capture on event time and scores
// them against its labels.
func Backtest(r *Reader, cfg BacktestConfig) (*Result, error) {
	if cfg.Partitions < 1 {
		return nil, fmt.Errorf("backtest: partitions %d, want at least 1", cfg.Partitions)
	}
	engines := make([]*detectors.Engine, cfg.Partitions)
	for i := range engines {
		e, err := detectors.New(cfg.Detectors)
		if err != nil {
			return nil, err
		}
		engines[i] = e
	}
	res := &Result{Detectors: map[string]*DetectorResult{}, Engines: engines, Unscored: map[string]int{},
		UnscoredFalsePos: map[string]int{}, campaignStart: map[string]int64{}, firstDetect: map[[2]string]int64{},
		labels: map[string]string{}}
	var clock time.Duration
	var last int64
	for {
		ev := new(event.RequestEvent)
		label, err := r.Next(ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if ev.TimeUnixNano < last {
			return nil, fmt.Errorf("backtest: event %s at %s is before the one read before it: captures are in event-time order",
				ev.Id, time.Unix(0, ev.TimeUnixNano).UTC().Format(time.RFC3339Nano))
		}
		last = ev.TimeUnixNano
		res.Events++
		if label != "" {
			res.Labelled++
			res.labels[ev.Id] = label
			if _, ok := res.campaignStart[label]; !ok {
				res.campaignStart[label] = ev.TimeUnixNano
			}
		}
		kind, value := event.PrincipalOf(ev)
		e := engines[event.Partition(kind, value, cfg.Partitions)]
		began := time.Now()
		found := e.Observe(ev)
		clock += time.Since(began)
		res.Anomalies = append(res.Anomalies, found...)
	}
	res.DetectorTime = clock
	res.score()
	return res, nil
}

// kindOf is a label's attack kind: "scraping/2" → "scraping".
func kindOf(label string) string {
	k, _, _ := strings.Cut(label, "/")
	return k
}

func (res *Result) score() {
	kinds := map[string]bool{}
	for _, k := range AttackKinds {
		kinds[k] = true
	}
	fp := map[string][]string{}
	flaggedBy := map[string][]string{}
	for _, a := range res.Anomalies {
		label := ""
		for _, id := range a.EventIds {
			if l := res.labels[id]; l != "" {
				label = l
				break
			}
		}
		if !kinds[a.Detector] {
			res.Unscored[a.Detector]++
			if label == "" {
				res.UnscoredFalsePos[a.Detector]++
			}
		} else {
			d := res.detector(a.Detector)
			d.Anomalies++
			if label != "" {
				d.TruePositives++
			}
		}
		if label == "" {
			res.Unlabelled = append(res.Unlabelled, a)
		}
		if label == "" && a.GetPrincipal().GetKind() != event.KindAPI {
			p := a.Principal.Kind + ":" + a.Principal.Value
			if !slices.Contains(fp[p], a.Detector) {
				fp[p] = append(fp[p], a.Detector)
			}
		}
		if label != "" && !slices.Contains(flaggedBy[label], a.Detector) {
			flaggedBy[label] = append(flaggedBy[label], a.Detector)
		}
		if label != "" && kindOf(label) == a.Detector {
			k := [2]string{a.Detector, label}
			if _, ok := res.firstDetect[k]; !ok {
				res.firstDetect[k] = a.TimeUnixNano
			}
		}
	}
	for label := range res.campaignStart {
		if kinds[kindOf(label)] {
			res.detector(kindOf(label)).Campaigns++
		}
	}
	for name, d := range res.Detectors {
		var delays []float64
		for k, t := range res.firstDetect {
			if k[0] == name {
				d.Detected++
				delays = append(delays, float64(t-res.campaignStart[k[1]])/1e9)
			}
		}
		d.Precision = 1
		if d.Anomalies > 0 {
			d.Precision = float64(d.TruePositives) / float64(d.Anomalies)
		}
		if d.Campaigns > 0 {
			d.Recall = float64(d.Detected) / float64(d.Campaigns)
		}
		if len(delays) > 0 {
			sort.Float64s(delays)
			m := delays[len(delays)/2]
			if len(delays)%2 == 0 {
				m = (delays[len(delays)/2-1] + delays[len(delays)/2]) / 2
			}
			d.MedianDetectS = &m
		}
		res.MacroPrecision += d.Precision / float64(len(res.Detectors))
		res.MacroRecall += d.Recall / float64(len(res.Detectors))
	}
	for p, dets := range fp {
		res.FalsePositives = append(res.FalsePositives, fmt.Sprintf("%s %v", p, dets))
	}
	res.Missed = map[string][]string{}
	for label := range res.campaignStart {
		if _, ok := res.firstDetect[[2]string{kindOf(label), label}]; !ok && kinds[kindOf(label)] {
			res.Missed[label] = flaggedBy[label]
		}
	}
	slices.Sort(res.FalsePositives)
	res.FalsePositivePrincipals = len(fp)
}

func (res *Result) detector(name string) *DetectorResult {
	d := res.Detectors[name]
	if d == nil {
		d = &DetectorResult{}
		res.Detectors[name] = d
	}
	return d
}

// SetVerdicts records what the responder made of the anomalies (Judge).
func (res *Result) SetVerdicts(vs Verdicts) {
	res.Verdicts = vs
	res.FlaggedPrincipals, res.BlockedPrincipals = len(vs.Flagged()), len(vs.Blocked())
}
