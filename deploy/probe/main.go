// Command apiguard-probe is the health check of the apiguard container
// image: it GETs one URL and exits 0 on a 2xx answer, 1 otherwise, so that
// Docker healthchecks and Kubernetes exec probes can ask the admin
// listener (/healthz, /readyz) from inside an image that has no shell and
// no HTTP client.
//
//	apiguard-probe http://127.0.0.1:9465/readyz
//
// When $APIGUARD_ADMIN_TOKEN is set it is sent as a bearer token, as the
// admin listener requires off loopback. The answer's first line is
// printed (Docker keeps it in the container's health log). The request
// gives up after 2 seconds, or $APIGUARD_PROBE_TIMEOUT.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// defaultTimeout bounds one probe when $APIGUARD_PROBE_TIMEOUT is unset:
// below the shortest probe period the deploy files use (5 s).
const defaultTimeout = 2 * time.Second

func main() {
	if len(os.Args) != 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: apiguard-probe URL")
		os.Exit(2)
	}
	timeout := defaultTimeout
	if v := os.Getenv("APIGUARD_PROBE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "apiguard-probe: $APIGUARD_PROBE_TIMEOUT: %q, want a duration such as 2s\n", v)
			os.Exit(2)
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	line, err := probe(ctx, http.DefaultClient, os.Args[1], os.Getenv("APIGUARD_ADMIN_TOKEN"))
	if line != "" {
		fmt.Println(line)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "apiguard-probe: %v\n", err)
		os.Exit(1)
	}
}

// probe GETs url and returns the status and the first line of the body;
// the error is not nil unless the answer is a 2xx.
func probe(ctx context.Context, c *http.Client, url, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("probing %s: %w", url, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("probing %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	first, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	line := strings.TrimSpace(resp.Status + " " + first)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return line, fmt.Errorf("probing %s: %s", url, resp.Status)
	}
	return line, nil
}
