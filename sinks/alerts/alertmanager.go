package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// AlertName is the alertname label of every apiguard alert.
const AlertName = "ApiguardAnomaly"

// alertmanager posts to Alertmanager's v2 API (POST /api/v2/alerts).
type alertmanager struct {
	base         string
	client       *http.Client
	resolveAfter time.Duration
}

// amAlert is Alertmanager's postableAlert.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func (m *alertmanager) name() string { return "alertmanager" }

// send posts the anomaly as an alert. Its labels identify it (detector,
// API, principal): a recurring anomaly re-posts the same alert with a later
// endsAt, which keeps it firing; when it stops recurring, Alertmanager
// resolves it at endsAt.
func (m *alertmanager) send(ctx context.Context, a *event.Anomaly, link string) error {
	body, err := json.Marshal([]amAlert{toAlert(a, link, m.resolveAfter)})
	if err != nil {
		return &permanentError{fmt.Errorf("encoding alert: %w", err)}
	}
	return post(ctx, m.client, m.base+"/api/v2/alerts", body, http.Header{"Content-Type": {"application/json"}})
}

func toAlert(a *event.Anomaly, link string, resolveAfter time.Duration) amAlert {
	t := time.Unix(0, a.TimeUnixNano).UTC()
	ann := map[string]string{
		"summary":    a.Summary,
		"anomaly_id": a.Id,
		"score":      strconv.FormatFloat(a.Score, 'f', 3, 64),
	}
	if d := explain(a); d != "" {
		ann["description"] = d
	}
	if link != "" {
		ann["dashboard"] = link
	}
	return amAlert{
		Labels: map[string]string{
			"alertname":      AlertName,
			"detector":       a.Detector,
			"api":            a.Api,
			"principal_kind": a.GetPrincipal().GetKind(),
			"principal":      a.GetPrincipal().GetValue(),
			"severity":       a.Severity.Label(),
		},
		Annotations:  ann,
		StartsAt:     t,
		EndsAt:       t.Add(resolveAfter),
		GeneratorURL: link,
	}
}

// explain lists the features that deviated: "rate_1m: 400 (expected 10,
// +39.0σ)".
func explain(a *event.Anomaly) string {
	var parts []string
	for _, d := range a.Deviations {
		parts = append(parts, fmt.Sprintf("%s: %.4g (expected %.4g, %+.1fσ)", d.Feature, d.Observed, d.Expected, d.Deviation))
	}
	return strings.Join(parts, "; ")
}
