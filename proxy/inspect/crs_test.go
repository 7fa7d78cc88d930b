package inspect

import (
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/apiguard/apiguard/internal/evaldata"
	"github.com/apiguard/apiguard/proxy"
)

// crsOnce compiles the rule set once for the package's tests.
var crsOnce = sync.OnceValues(func() (*CRS, error) {
	cfg := proxy.DefaultCRSConfig()
	cfg.Routes = []string{"POST /orders", "GET /search"}
	return NewCRS(cfg)
})

func TestCRS(t *testing.T) {
	c, err := crsOnce()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, target, ctype, body string
		rule                              string // a rule id in the reason; "" for allowed
	}{
		{"plain search", "GET", "/search?q=red+shoes&page=2", "", "", ""},
		{"plain json order", "POST", "/orders", "application/json", `{"item":"book","qty":2,"note":"leave at the door"}`, ""},
		{"sqli in query", "GET", "/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--", "", "", "942"},
		{"xss in query", "GET", "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E", "", "", "941"},
		{"command injection in json", "POST", "/orders", "application/json", `{"item":"x; cat /etc/passwd"}`, "932"},
		{"path traversal in query", "GET", "/search?file=../../../../etc/passwd", "", "", "930"},
		{"not a CRS route", "GET", "/items?q=1%27%20UNION%20SELECT%20password%20FROM%20users--", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := exchangeFor(tc.method, tc.target, tc.ctype, tc.body)
			d := c.Check(x)
			if tc.rule == "" {
				if d != nil {
					t.Fatalf("refused: %s", d.Reason)
				}
				if tc.body != "" {
					if b, _ := io.ReadAll(x.Req.Body); string(b) != tc.body {
						t.Errorf("upstream body %q", b)
					}
				}
				return
			}
			if d == nil || d.Status != 403 || !strings.HasPrefix(d.Reason, "crs 9") || !strings.Contains(d.Reason, " "+tc.rule) {
				t.Fatalf("denial %+v, want 403 naming a %sxxx rule", d, tc.rule)
			}
		})
	}
}

func TestCRSFlagAndConfig(t *testing.T) {
	c, err := crsOnce()
	if err != nil {
		t.Fatal(err)
	}
	flag := &CRS{cfg: c.cfg, waf: c.waf}
	flag.cfg.Mode = "flag"
	x := exchangeFor("GET", "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "", "")
	if d := flag.Check(x); d != nil || x.Event.Check != CRSName || !strings.HasPrefix(x.Event.Reason, "flagged: crs 941") {
		t.Errorf("flag mode: %+v, event %q %q", d, x.Event.Check, x.Event.Reason)
	}
	for _, tc := range []struct {
		mod  func(*proxy.CRSConfig)
		want string
	}{
		{func(c *proxy.CRSConfig) { c.ParanoiaLevel = 5 }, "proxy.crs.paranoia_level"},
		{func(c *proxy.CRSConfig) { c.AnomalyThreshold = 0 }, "proxy.crs.anomaly_threshold"},
		{func(c *proxy.CRSConfig) { c.Mode = "log" }, "proxy.crs.mode"},
		{func(c *proxy.CRSConfig) { c.Routes = []string{"orders"} }, "proxy.crs.routes[0]"},
	} {
		cfg := proxy.DefaultCRSConfig()
		tc.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want %s", err, tc.want)
		}
	}
	bad := proxy.DefaultCRSConfig()
	bad.Routes, bad.Directives = []string{"GET /x"}, "SecRule NONSENSE"
	if _, err := NewCRS(bad); err == nil || !strings.Contains(err.Error(), "proxy.crs") {
		t.Errorf("bad directives: %v", err)
	}
}

// TestCRSRatesCSIC2010 runs the CRS (paranoia 1, threshold 5) on CSIC
// 2010 requests rebuilt as the proxy would see them: every twentieth request
// of the normal training set for false positives, every other one of the anomalous
// development set for detection. (The CRS costs about 2 ms a request here.)
func TestCRSRatesCSIC2010(t *testing.T) {
	if testing.Short() {
		t.Skip("14,000 requests through the CRS")
	}
	cfg := proxy.DefaultCRSConfig()
	cfg.Routes = []string{"*"}
	c, err := crsOnce()
	if err != nil {
		t.Fatal(err)
	}
	all := &CRS{cfg: cfg, waf: c.waf}
	all.cfg.Routes = nil
	run := func(file string, every int) (n, flagged int) {
		for i, req := range evaldata.CSIC(t, file) {
			if i%every != 0 {
				continue
			}
			fields := strings.Fields(req.Line)
			u, err := url.Parse(fields[1])
			if err != nil {
				n++
				flagged++ // the proxy refuses a request line it cannot parse
				continue
			}
			ctype := ""
			if req.Body != "" {
				ctype = "application/x-www-form-urlencoded"
			}
			x := exchangeFor(fields[0], u.RequestURI(), ctype, req.Body)
			x.Req.Header.Set("User-Agent", "Mozilla/5.0 (compatible; Konqueror/3.5; Linux) KHTML/3.5.8 (like Gecko)")
			x.Req.Header.Set("Accept", "text/xml,application/xml,application/xhtml+xml,text/html;q=0.9,text/plain;q=0.8,image/png,*/*;q=0.5")
			x.Req.Header.Set("Accept-Language", "en")
			all.cfg.Routes = []string{x.API}
			n++
			if all.Check(x) != nil {
				flagged++
			}
		}
		return n, flagged
	}
	sparse := 1
	if raceEnabled {
		sparse = 10 // the race detector makes the CRS ten times slower
	}
	nn, fn := run("normalTrafficTraining.txt.gz", 20*sparse)
	na, fa := run("anomalousTrafficDev.txt.gz", 2*sparse)
	fpr, tpr := float64(fn)/float64(nn), float64(fa)/float64(na)
	t.Logf("CRS on CSIC 2010: normal %d requests, refused %d (FPR %.2f%%); anomalous %d, refused %d (TPR %.1f%%)",
		nn, fn, 100*fpr, na, fa, 100*tpr)
	if fpr > 0.01 || tpr < 0.25 {
		t.Errorf("FPR %.4f (want ≤ 0.01), TPR %.3f (want ≥ 0.25)", fpr, tpr)
	}
}

// BenchmarkCRS is the CRS check's cost on a clean JSON order and on an
// injection it refuses.
func BenchmarkCRS(b *testing.B) {
	c, err := crsOnce()
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, target, body string }{
		{"clean", "/orders", `{"item":"book","qty":2,"note":"leave at the door"}`},
		{"sqli", "/orders", `{"item":"1' UNION SELECT password FROM users--"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.Check(exchangeFor("POST", tc.target, "application/json", tc.body))
			}
		})
	}
}
