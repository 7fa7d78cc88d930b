package integration

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
)

// policyConfig is the loop's config with the responder's policies at
// work: short TTLs so that a returning scanner is seen within the test,
// and the issuer's revocation endpoint (appended by the test).
const policyConfig = `
nats:
  partitions: 4
proxy:
  routes: ["GET /items/{id}", "POST /orders"]
  fail_open: false
  trusted_proxies: ["127.0.0.0/8"]
emit:
  publish_timeout: 1s
  flush_interval: 2ms
detectors:
  windows: [2s, 6s, 20s]
  warmup_samples: 8
  warmup_principals: 3
  cooldown: 2s
  idle_after: 1m
  volumetric:
    threshold: 6
    min_per_minute: 360
responder:
  block_ttl: 3s
  escalation:
    window: 10m
    factor: 2
    max_ttl: 1m
    detectors_to_block: 0
  groups:
    min_addresses: 10
    window: 1m
    ttl: 30s
log:
  level: info
`

// revocationEndpoint is a loopback stand-in for an identity provider's
// RFC 7009 endpoint: it checks client_secret_basic and the form, and
// records every token revoked.
type revocationEndpoint struct {
	mu     sync.Mutex
	tokens []string
	bad    []string
}

func (s *revocationEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || !ok || id != "apiguard" || secret != "idp-secret" ||
		r.PostForm.Get("token_type_hint") != "access_token" || r.PostForm.Get("token") == "" {
		s.mu.Lock()
		s.bad = append(s.bad, fmt.Sprintf("%s %v basic=%v", r.Method, r.PostForm, ok))
		s.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_request"}`)
		return
	}
	s.mu.Lock()
	s.tokens = append(s.tokens, r.PostForm.Get("token"))
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *revocationEndpoint) revoked() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tokens...), append([]string(nil), s.bad...)
}

// unsignedJWT is a bearer token that carries a jti and no subject: the
// proxy names it by its jti (no JWT check is configured here).
func unsignedJWT(jti string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte(fmt.Sprintf(`{"jti":%q,"iss":"https://idp.test"}`, jti))) + ".sig"
}

// as sends one request with the given identity headers and returns its
// status and WWW-Authenticate.
func as(t *testing.T, hc *http.Client, method, target string, h map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, target, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, ""
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// TestResponsePolicies runs two proxies and a pipeline with the default
// policies: a stolen token is revoked at every proxy within the loop's
// latency and reported once to the issuer (RFC 7009); a partner's burst is
// throttled (429), not blocked; a scanner that comes back after its block
// lapsed is blocked for twice as long; twenty scanners of one /24 become
// one network entry.
func TestResponsePolicies(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	srv := testutil.JetStream(t, testutil.FreePort(t), filepath.Join(dir, "nats"))
	natsURL := srv.ClientURL()
	_, js := testutil.Connect(t, srv)

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/items/") && r.URL.Path != "/orders" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	defer upstream.Close()
	idp := &revocationEndpoint{}
	idpSrv := httptest.NewServer(idp)
	defer idpSrv.Close()

	t.Setenv("APIGUARD_TEST_IDP_SECRET", "idp-secret")
	cfgPath := filepath.Join(dir, "apiguard.yaml")
	issuer := fmt.Sprintf(`  revocation:
    backoff: 100ms
    issuers:
      - name: test-idp
        endpoint: %s/oauth2/revoke
        client_id: apiguard
        client_secret_env: APIGUARD_TEST_IDP_SECRET
`, idpSrv.URL)
	cfg := strings.Replace(policyConfig, "log:\n", issuer+"log:\n", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := apiguard(t, "check-config", "--config", cfgPath); !strings.Contains(out, "name: stolen-token-revoke") {
		t.Fatalf("check-config does not print the effective policy:\n%s", out)
	}
	start(t, "pipeline", "pipeline", "--config", cfgPath, "--nats", natsURL)
	var bases []string
	for i := range 2 {
		listen := freeAddr(t)
		bases = append(bases, "http://"+listen)
		start(t, fmt.Sprintf("proxy-%d", i), "proxy", "--config", cfgPath, "--nats", natsURL, "--listen", listen,
			"--upstream", upstream.URL, "--spool-dir", filepath.Join(dir, fmt.Sprintf("spool-%d", i)))
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, b := range bases {
		testutil.Eventually(t, 20*time.Second, func() bool { st, _ := as(t, hc, "GET", b+"/items/1", nil); return st == 200 }, "proxy %s never answered", b)
	}

	// Normal keyed clients give the baselines.
	normalRefused := map[string]int{}
	var nmu sync.Mutex
	stopNormal := normalTraffic(8, func(i, n int) {
		key := fmt.Sprintf("client-%02d", i)
		path, method := fmt.Sprintf("/items/%d", n), "GET"
		if n%3 == 2 {
			path, method = "/orders", "POST"
		}
		st, _ := as(t, hc, method, bases[n%2]+path, map[string]string{"X-API-Key": key + ".secret", "X-Forwarded-For": fmt.Sprintf("192.0.2.%d", 10+i)})
		if st != 200 && st != 0 {
			nmu.Lock()
			normalRefused[key]++
			nmu.Unlock()
		}
	})
	defer stopNormal()
	time.Sleep(baselineWarmUp)

	t.Run("stolen token revoked everywhere and at the issuer", func(t *testing.T) {
		tok := "Bearer " + unsignedJWT("jti-stolen-1")
		owner := map[string]string{"Authorization": tok, "X-Forwarded-For": "198.51.100.10",
			"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"}
		for i := range 8 {
			if st, _ := as(t, hc, "GET", bases[i%2]+fmt.Sprintf("/items/%d", i), owner); st != 200 {
				t.Fatalf("the owner's request %d: %d", i, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
		thief := map[string]string{"Authorization": tok, "X-Forwarded-For": "203.0.113.50", "User-Agent": "curl/8.5.0"}
		began := time.Now()
		as(t, hc, "GET", bases[0]+"/items/99", thief)
		for _, b := range bases {
			testutil.Eventually(t, 10*time.Second, func() bool {
				st, wa := as(t, hc, "GET", b+"/items/1", owner)
				return st == 401 && wa == `Bearer error="invalid_token"`
			}, "the stolen token is still accepted at %s", b)
		}
		t.Logf("stolen token refused at both proxies %s after the thief's first request", time.Since(began).Round(time.Millisecond))
		testutil.Eventually(t, 10*time.Second, func() bool { got, _ := idp.revoked(); return len(got) > 0 }, "the issuer received no revocation")
		time.Sleep(time.Second) // a second call would come within this
		got, bad := idp.revoked()
		if len(got) != 1 || got[0] != "jti-stolen-1" || len(bad) > 0 {
			t.Errorf("issuer received %v (malformed %v), want exactly one revocation of jti-stolen-1", got, bad)
		}
	})

	t.Run("partner burst throttled, not blocked", func(t *testing.T) {
		partner := map[string]string{"X-API-Key": "partner.secret", "X-Forwarded-For": "192.0.2.200"}
		statuses := map[int]int{}
		began := time.Now()
		for time.Since(began) < 15*time.Second && statuses[429] < 20 {
			st, _ := as(t, hc, "POST", bases[0]+"/orders", partner)
			statuses[st]++
			time.Sleep(10 * time.Millisecond)
		}
		if statuses[429] < 20 || statuses[403] > 0 {
			t.Fatalf("partner statuses %v: want 429s and no 403", statuses)
		}
		// Throttled to a rate, the partner is still served at that rate.
		// It respects its 429s, as a partner's client does: it waits
		// what Retry-After says before trying again. It is never blocked
		// (a principal that goes on past its 429s would be).
		served, refused := 0, 0
		for began := time.Now(); time.Since(began) < 10*time.Second && served < 5; {
			req, _ := http.NewRequest("POST", bases[1]+"/orders", nil)
			for k, v := range partner {
				req.Header.Set(k, v)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			wait := 100 * time.Millisecond
			switch resp.StatusCode {
			case 200:
				served++
			case 429:
				refused++
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
					wait = time.Duration(s) * time.Second
				}
			default:
				t.Fatalf("the throttled partner got %d: want 200 or 429", resp.StatusCode)
			}
			time.Sleep(wait)
		}
		if served == 0 {
			t.Error("the throttled partner was served nothing in 10s: a block, not a throttle")
		}
		t.Logf("partner: %v during the burst, then %d served and %d refused respecting Retry-After", statuses, served, refused)
	})

	scan := func(ip string) {
		for _, p := range []string{"/wp-login.php", "/.env", "/admin/config", "/phpmyadmin/", "/.git/config", "/server-status"} {
			as(t, hc, "GET", bases[0]+p, map[string]string{"X-Forwarded-For": ip, "User-Agent": "scanner/1.0"})
		}
	}
	ipTTLs := func(ip string) []int64 {
		var out []int64
		for _, a := range auditRows(t, js) {
			if a.Target.GetKind() == event.KindIP && a.Target.GetValue() == ip && !a.DryRun && a.Kind == event.ActionKind_ACTION_BLOCK {
				out = append(out, a.TtlSeconds)
			}
		}
		return out
	}

	t.Run("returning scanner blocked twice as long", func(t *testing.T) {
		const ip = "203.0.113.77"
		scan(ip)
		testutil.Eventually(t, 10*time.Second, func() bool { return len(ipTTLs(ip)) > 0 }, "the scanner was not blocked")
		first := ipTTLs(ip)[0]
		time.Sleep(time.Duration(first+1) * time.Second) // the block lapses
		scan(ip)
		testutil.Eventually(t, 10*time.Second, func() bool { return len(ipTTLs(ip)) > 1 }, "the returning scanner was not blocked")
		ttls := ipTTLs(ip)
		if ttls[len(ttls)-1] != 2*first {
			t.Errorf("block TTLs %v: want the return's twice the first (%d)", ttls, first)
		}
	})

	t.Run("campaign of one /24 becomes one network entry", func(t *testing.T) {
		for i := range 20 {
			scan(fmt.Sprintf("198.18.7.%d", 10+i))
		}
		testutil.Eventually(t, 15*time.Second, func() bool {
			return strings.Contains(apiguard(t, "blocks", "--nats", natsURL), "198.18.7.0/24")
		}, "no entry for 198.18.7.0/24")
		n := 0
		for _, a := range auditRows(t, js) {
			if a.Target.GetKind() == event.KindCIDR && a.Target.GetValue() == "198.18.7.0/24" && !a.DryRun {
				n++
				if a.Actor != "policy:group" {
					t.Errorf("network entry by %s: %s", a.Actor, a.Reason)
				}
			}
		}
		if n != 1 {
			t.Errorf("%d network entries for 198.18.7.0/24, want 1", n)
		}
		// A fresh address of the network is refused by the network entry.
		if st, _ := as(t, hc, "GET", bases[1]+"/items/1", map[string]string{"X-Forwarded-For": "198.18.7.250"}); st != 403 {
			t.Errorf("an address of the blocked network: %d, want 403", st)
		}
	})

	stopNormal()
	if len(normalRefused) > 0 {
		t.Errorf("normal clients refused: %v", normalRefused)
	}
}
