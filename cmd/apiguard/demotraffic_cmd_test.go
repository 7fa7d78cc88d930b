package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestDemoTraffic runs apiguard demo-traffic against a stand-in proxy that
// refuses the attacker after its 20th request: the clients' keys reach
// the demo's APIs, the attacker hammers POST /orders, and its refusal is
// reported.
func TestDemoTraffic(t *testing.T) {
	var mu sync.Mutex
	byKey := map[string]map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, _, _ := strings.Cut(r.Header.Get("X-API-Key"), ".")
		op := r.Method + " " + strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0]
		mu.Lock()
		if byKey[key] == nil {
			byKey[key] = map[string]int{}
		}
		byKey[key][op]++
		n := byKey[key][op]
		mu.Unlock()
		if key == "attacker-1" && n > 20 {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	t.Cleanup(srv.Close)

	var out bytes.Buffer
	err := run(context.Background(), "demo-traffic", []string{"--target", srv.URL + "/", "--clients", "4",
		"--attack-after", "100ms", "--for", "2500ms"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	apis := map[string]bool{}
	for i := range 4 {
		if len(byKey[clientKey(i)]) == 0 {
			t.Errorf("%s sent nothing", clientKey(i))
		}
		for op := range byKey[clientKey(i)] {
			apis[op] = true
		}
		if byKey[clientKey(i)]["POST orders"] > 10 {
			t.Errorf("%s posted %d orders in 2.5 s: a normal client is slow", clientKey(i), byKey[clientKey(i)]["POST orders"])
		}
	}
	if len(apis) < 3 {
		t.Errorf("the clients reached %v, want most of the demo's APIs", apis)
	}
	if got := byKey["attacker-1"]["POST orders"]; got < 21 {
		t.Errorf("attacker-1 posted %d orders, want it hammering past its refusal", got)
	}
	for _, want := range []string{"ATTACK    attacker-1", "REFUSED   attacker-1 now gets 403"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDemoTrafficBadTarget(t *testing.T) {
	for _, target := range []string{"proxy:8080", "ftp://proxy", "http://"} {
		err := run(context.Background(), "demo-traffic", []string{"--target", target, "--for", "1ms"}, &bytes.Buffer{})
		if !errors.Is(err, errUsage) {
			t.Errorf("--target %q: %v, want a usage error", target, err)
		}
	}
}
