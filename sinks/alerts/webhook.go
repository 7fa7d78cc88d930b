package alerts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// Webhook headers.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>" under the webhook's key>". Receivers check it with
	// Verify and refuse stale timestamps, which stops replays.
	SignatureHeader = "X-Apiguard-Signature"
	// DeliveryHeader carries the anomaly id, for receivers to deduplicate
	// retried deliveries.
	DeliveryHeader = "X-Apiguard-Delivery"
)

// Payload is the JSON body of a "json" webhook.
type Payload struct {
	Version   string      `json:"version"` // "1"
	ID        string      `json:"id"`
	Time      time.Time   `json:"time"`
	Detector  string      `json:"detector"`
	API       string      `json:"api"`
	Principal Principal   `json:"principal"`
	Score     float64     `json:"score"`
	Severity  string      `json:"severity"`
	Summary   string      `json:"summary"`
	Features  []Deviation `json:"features"`
	EventIDs  []string    `json:"event_ids"`
	Dashboard string      `json:"dashboard,omitempty"`
}

// Principal is who the anomaly is about.
type Principal struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// Deviation is one feature that deviated.
type Deviation struct {
	Feature   string  `json:"feature"`
	Observed  float64 `json:"observed"`
	Expected  float64 `json:"expected"`
	Deviation float64 `json:"deviation"`
}

type webhook struct {
	url    string
	slack  bool
	secret []byte
	client *http.Client
	now    func() time.Time
	index  int
}

func (w *webhook) name() string { return "webhook[" + strconv.Itoa(w.index) + "]" }

func (w *webhook) send(ctx context.Context, a *event.Anomaly, link string) error {
	var v any = toPayload(a, link)
	if w.slack {
		v = toSlack(a, link)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return &permanentError{fmt.Errorf("encoding webhook body: %w", err)}
	}
	h := http.Header{"Content-Type": {"application/json"}, DeliveryHeader: {a.Id}}
	if w.secret != nil {
		h.Set(SignatureHeader, Sign(w.secret, w.now(), body))
	}
	return post(ctx, w.client, w.url, body, h)
}

func toPayload(a *event.Anomaly, link string) Payload {
	p := Payload{
		Version: "1", ID: a.Id, Time: time.Unix(0, a.TimeUnixNano).UTC(), Detector: a.Detector, API: a.Api,
		Principal: Principal{Kind: a.GetPrincipal().GetKind(), Value: a.GetPrincipal().GetValue()},
		Score:     a.Score, Severity: a.Severity.Label(), Summary: a.Summary,
		Features: []Deviation{}, EventIDs: a.EventIds, Dashboard: link,
	}
	for _, d := range a.Deviations {
		p.Features = append(p.Features, Deviation{d.Feature, d.Observed, d.Expected, d.Deviation})
	}
	if p.EventIDs == nil {
		p.EventIDs = []string{}
	}
	return p
}

// slackMessage is an incoming-webhook payload: text for notifications,
// blocks for the message itself.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type string     `json:"type"`
	Text *slackText `json:"text,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func toSlack(a *event.Anomaly, link string) slackMessage {
	title := fmt.Sprintf("[%s] %s on %s by %s %s", strings.ToUpper(a.Severity.Label()), a.Detector, a.Api,
		a.GetPrincipal().GetKind(), a.GetPrincipal().GetValue())
	body := "*" + slackEscape(title) + "*\n" + slackEscape(a.Summary)
	if d := explain(a); d != "" {
		body += "\n" + slackEscape(d)
	}
	if link != "" {
		body += "\n<" + link + "|Investigate>"
	}
	return slackMessage{Text: title, Blocks: []slackBlock{{Type: "section", Text: &slackText{Type: "mrkdwn", Text: body}}}}
}

// slackEscape escapes the three characters Slack's mrkdwn reserves, so a
// principal an attacker chose cannot inject links or mentions.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Sign returns the SignatureHeader value for body at time t.
func Sign(key []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(key, ts, body))
}

func mac(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors Verify returns.
var (
	ErrSignatureMalformed = errors.New("malformed signature header")
	ErrSignatureStale     = errors.New("signature timestamp outside the tolerance")
	ErrSignatureMismatch  = errors.New("signature does not match")
)

// Verify checks a SignatureHeader value for body at now: well formed, a
// timestamp within tolerance of now, and a v1 MAC that matches (compared
// in constant time).
func Verify(key []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: %q", ErrSignatureMalformed, part)
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return fmt.Errorf("%w: v1 is not a hex SHA-256", ErrSignatureMalformed)
			}
			sigs = append(sigs, b)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: want t=<unix>,v1=<hex>", ErrSignatureMalformed)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s away", ErrSignatureStale, d.Round(time.Second))
	}
	want := mac(key, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrSignatureMismatch
}
