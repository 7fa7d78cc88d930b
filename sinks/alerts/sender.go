package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"text/template"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/event"
)

// Stats are the sender's counters over all destinations, safe to read
// while it runs.
type Stats struct {
	Delivered atomic.Uint64 // deliveries a destination accepted
	Failed    atomic.Uint64 // deliveries given up after the retries
	Retries   atomic.Uint64 // attempts after a first failure
	Dropped   atomic.Uint64 // anomalies not queued: a destination's queue was full, or shutdown
	Filtered  atomic.Uint64 // anomalies below min_severity
}

// destination is one place alerts go.
type destination interface {
	name() string
	// send makes one attempt; a *permanentError is not retried.
	send(ctx context.Context, a *event.Anomaly, link string) error
}

// permanentError is a refusal that retrying cannot fix (a 4xx answer).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

type queue struct {
	d  destination
	ch chan *event.Anomaly
}

// Sender is a pipeline sink that turns anomalies into alerts. WriteAnomaly
// never blocks; Run delivers, one goroutine per destination, so a failing
// webhook does not delay Alertmanager. Build it with New.
type Sender struct {
	cfg     Config
	min     event.Severity
	link    *template.Template
	queues  []*queue
	stats   Stats
	log     *slog.Logger
	lastLog atomic.Int64
	// backoff is the first retry delay; tests shorten it.
	backoff time.Duration
}

// New returns a sender for cfg. getenv resolves the webhooks' secrets
// (os.Getenv in production); a json webhook whose variable is empty is an
// error, not an unsigned webhook.
func New(cfg Config, getenv func(string) string, log *slog.Logger) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg, min: severities[cfg.MinSeverity], log: log.With("component", "alerts"), backoff: 200 * time.Millisecond}
	if cfg.DashboardURL != "" {
		s.link = template.Must(template.New("dashboard").Option("missingkey=error").Parse(cfg.DashboardURL))
	}
	client := &http.Client{Timeout: cfg.Timeout}
	if cfg.Alertmanager != "" {
		s.queues = append(s.queues, &queue{d: &alertmanager{base: strings.TrimRight(cfg.Alertmanager.Reveal(), "/"),
			client: client, resolveAfter: cfg.ResolveAfter}})
	}
	for i, w := range cfg.Webhooks {
		var secret []byte
		if w.SecretEnv != "" {
			v := getenv(w.SecretEnv)
			if v == "" {
				return nil, fmt.Errorf("alerts.webhooks[%d].secret_env: $%s is empty", i, w.SecretEnv)
			}
			secret = []byte(v)
		}
		s.queues = append(s.queues, &queue{d: &webhook{url: w.URL.Reveal(), slack: w.Format == "slack", secret: secret,
			client: client, now: time.Now, index: i}})
	}
	for _, q := range s.queues {
		q.ch = make(chan *event.Anomaly, cfg.QueueSize)
	}
	return s, nil
}

// Stats returns the live counters.
func (s *Sender) Stats() *Stats { return &s.stats }

// WriteAnomaly implements the pipeline's Sink. It queues the anomaly for
// every destination and returns at once; a full queue drops it for that
// destination and counts the drop. It never returns an error: alerts must
// not hold up detection.
func (s *Sender) WriteAnomaly(_ context.Context, a *event.Anomaly) error {
	if a.Severity < s.min {
		s.stats.Filtered.Add(1)
		return nil
	}
	for _, q := range s.queues {
		select {
		case q.ch <- a:
		default:
			s.stats.Dropped.Add(1)
			s.warn("alert queue full, dropping", "destination", q.d.name(), "anomaly", a.Id, "dropped_total", s.stats.Dropped.Load())
		}
	}
	return nil
}

// Run delivers queued anomalies until ctx ends. What is still queued then
// is counted as dropped.
func (s *Sender) Run(ctx context.Context) error {
	var g errgroup.Group
	for _, q := range s.queues {
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					if n := len(q.ch); n > 0 {
						s.stats.Dropped.Add(uint64(n))
						s.log.Warn("alerts not delivered at shutdown", "destination", q.d.name(), "count", n)
					}
					return nil
				case a := <-q.ch:
					s.deliver(ctx, q.d, a)
				}
			}
		})
	}
	return g.Wait()
}

// deliver tries a destination, then retries with exponential backoff.
func (s *Sender) deliver(ctx context.Context, d destination, a *event.Anomaly) {
	link := s.dashboardLink(a)
	backoff := s.backoff
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err := d.send(actx, a, link)
		cancel()
		if err == nil {
			s.stats.Delivered.Add(1)
			return
		}
		var perm *permanentError
		if errors.As(err, &perm) || attempt >= s.cfg.Retries || ctx.Err() != nil {
			s.stats.Failed.Add(1)
			s.warn("alert not delivered", "destination", d.name(), "anomaly", a.Id, "attempts", attempt+1, "err", err,
				"failed_total", s.stats.Failed.Load())
			return
		}
		s.stats.Retries.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// warn logs at most once a second.
func (s *Sender) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	if last := s.lastLog.Load(); now-last > int64(time.Second) && s.lastLog.CompareAndSwap(last, now) {
		s.log.Warn(msg, args...)
	}
}

// dashboardLink fills the dashboard template for a, or returns "".
func (s *Sender) dashboardLink(a *event.Anomaly) string {
	if s.link == nil {
		return ""
	}
	t := time.Unix(0, a.TimeUnixNano)
	q := url.QueryEscape
	data := map[string]string{
		"ID": q(a.Id), "Detector": q(a.Detector), "API": q(a.Api),
		"PrincipalKind": q(a.GetPrincipal().GetKind()), "PrincipalValue": q(a.GetPrincipal().GetValue()),
		"From": strconv.FormatInt(t.Add(-15*time.Minute).UnixMilli(), 10),
		"To":   strconv.FormatInt(t.Add(15*time.Minute).UnixMilli(), 10),
	}
	var b strings.Builder
	if err := s.link.Execute(&b, data); err != nil {
		return ""
	}
	return b.String()
}

// post sends body and classifies the answer: 2xx is success, 4xx other
// than 408 and 429 is permanent, anything else is worth a retry. Its
// errors name the destination by scheme and host only (see redact).
func post(ctx context.Context, client *http.Client, u string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return &permanentError{fmt.Errorf("building request to %s: %w", redact(u), scrub(err, u))}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %s: %w", redact(u), scrub(err, u))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		return &permanentError{fmt.Errorf("%s answered %s: %s", redact(u), resp.Status, bytes.TrimSpace(msg))}
	default:
		return fmt.Errorf("%s answered %s: %s", redact(u), resp.Status, bytes.TrimSpace(msg))
	}
}

// redact keeps a URL's scheme and host only: webhook paths often are the
// secret (Slack's are), and user information is.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "webhook"
	}
	return p.Scheme + "://" + p.Host
}

// scrub returns err with the URL that net/http puts in its errors (path,
// query and user name included) replaced by redact(u).
func scrub(err error, u string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact(u)
	}
	return err
}
