package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// demoTraffic drives the demo: normal API-key clients over several APIs at
// human rates, and attackers that hammer POST /orders once the baselines
// have warmed up.
type demoTraffic struct {
	base        string
	clients     int
	attackers   int
	attackStart time.Duration
	report      *demoReport
	http        *http.Client
}

// demoProfile is what a normal client does: requests per second per API.
var demoProfile = []struct {
	method, path string
	rate         float64
}{
	{"GET", "/search?q=%s", 1.0},
	{"GET", "/products/%d", 0.5},
	{"POST", "/orders", 0.3},
	{"GET", "/users/%d/orders", 0.1},
}

const attackRate = 25.0 // requests per second while not refused

func newDemoTraffic(base string, clients, attackers int, attackStart time.Duration, report *demoReport) *demoTraffic {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	return &demoTraffic{base: base, clients: clients, attackers: attackers, attackStart: attackStart, report: report,
		http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func attackerKey(i int) string { return fmt.Sprintf("attacker-%d", i) }
func clientKey(i int) string   { return fmt.Sprintf("client-%02d", i) }

// run sends traffic until ctx ends.
func (d *demoTraffic) run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range d.clients {
		for j, p := range demoProfile {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(j)))
			wg.Go(func() { d.normal(ctx, rng, clientKey(i), p.method, p.path, p.rate) })
		}
	}
	for i := range d.attackers {
		wg.Go(func() { d.attack(ctx, attackerKey(i+1), d.attackStart+time.Duration(i)*time.Second) })
	}
	wg.Wait()
	d.http.CloseIdleConnections()
	return nil
}

func (d *demoTraffic) normal(ctx context.Context, rng *rand.Rand, key, method, path string, rate float64) {
	for {
		wait := time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		if !sleep(ctx, wait) {
			return
		}
		p := path
		if strings.Contains(p, "%s") {
			p = fmt.Sprintf(p, []string{"shoes", "lamp", "tent", "kettle"}[rng.IntN(4)])
		} else if strings.Contains(p, "%d") {
			p = fmt.Sprintf(p, rng.IntN(5000))
		}
		status := d.do(ctx, method, p, key)
		if status != 0 {
			d.report.clientStatus(key, false, status)
		}
	}
}

func (d *demoTraffic) attack(ctx context.Context, key string, after time.Duration) {
	if !sleep(ctx, after) {
		return
	}
	d.report.attackStarted(key)
	interval := time.Duration(float64(time.Second) / attackRate)
	refused := false
	for {
		status := d.do(ctx, "POST", "/orders", key)
		if status != 0 {
			d.report.clientStatus(key, true, status)
		}
		if status == http.StatusForbidden {
			refused = true
		}
		// A 429 does not slow it down (it defies its throttle, and is
		// blocked for it); once blocked, it keeps probing, slowly.
		wait := interval
		if refused {
			wait = time.Second
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// do sends one request and returns its status, or 0 if it failed or ctx ended.
func (d *demoTraffic) do(ctx context.Context, method, path, key string) int {
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, nil)
	if err != nil {
		return 0
	}
	req.Header.Set("X-API-Key", key+".demo-secret")
	req.Header.Set("User-Agent", "apiguard-demo/1")
	resp, err := d.http.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			d.report.transportError()
		}
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
