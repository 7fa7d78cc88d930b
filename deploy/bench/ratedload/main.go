// Command ratedload sends GET requests at a fixed rate (open loop: the
// schedule does not wait for slow answers, so queueing shows in the
// latencies, unlike a closed-loop tool) and prints "p50_ms p99_ms errors".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "target URL")
	rate := flag.Float64("rate", 1000, "requests per second")
	dur := flag.Duration("d", 10*time.Second, "duration")
	var headers headerFlags
	flag.Var(&headers, "H", "header \"Name: value\" (repeatable)")
	flag.Parse()
	if *url == "" || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "usage: ratedload -url URL -rate R -d 10s [-H 'Name: value']")
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 1024}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var (
		mu     sync.Mutex
		lat    []time.Duration
		errs   int
		wg     sync.WaitGroup
		period = time.Duration(float64(time.Second) / *rate)
	)
	start := time.Now()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * period)
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, *url, nil)
			for _, h := range headers {
				req.Header.Set(h[0], h[1])
			}
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			// Latency from the scheduled time, not the send time.
			d := time.Since(at)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || resp.StatusCode != http.StatusOK {
				errs++
				return
			}
			lat = append(lat, d)
		})
	}
	wg.Wait()
	if len(lat) == 0 {
		fmt.Println("0 0", errs)
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	fmt.Printf("%.3f %.3f %d\n", q(0.50), q(0.99), errs)
}

type headerFlags [][2]string

func (h *headerFlags) String() string { return fmt.Sprint(*h) }

func (h *headerFlags) Set(v string) error {
	for i := 0; i < len(v); i++ {
		if v[i] == ':' {
			val := v[i+1:]
			for len(val) > 0 && val[0] == ' ' {
				val = val[1:]
			}
			*h = append(*h, [2]string{v[:i], val})
			return nil
		}
	}
	return fmt.Errorf("header %q: want Name: value", v)
}
