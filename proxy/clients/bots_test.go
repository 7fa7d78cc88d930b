package clients

import (
	"encoding/json"
	"github.com/apiguard/apiguard/proxy"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/evaldata"
)

const chromeLinux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

func TestBots(t *testing.T) {
	events := &collector{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	cfg := proxy.DefaultConfig()
	cfg.Upstream = up.URL
	cfg.Routes = []string{"GET /account", "GET /feed"}
	cfg.TrustedProxies = []string{"127.0.0.1/32"}
	bc := proxy.DefaultBotsConfig()
	bc.CrawlerFiles = []string{"testdata/bots/crawlers.txt"}
	bc.ScannerFiles = []string{"testdata/bots/scanners.txt"}
	bc.DatacenterFiles = []string{"testdata/bots/datacenter.txt"}
	bc.Routes = map[string]proxy.BotRoute{
		"GET /account": {BrowserOnly: true},
		"GET /feed":    {Actions: map[string]string{proxy.BotCrawler: proxy.BotBlock, proxy.BotDatacenter: proxy.BotBlock}},
	}
	if err := bc.Validate(); err != nil {
		t.Fatal(err)
	}
	bots, err := NewBots(bc)
	if err != nil {
		t.Fatal(err)
	}
	if bots.Crawlers() != 2 || bots.Skipped() != 1 {
		t.Errorf("loaded %d crawler patterns, skipped %d; want 2 and 1 (the look-behind)", bots.Crawlers(), bots.Skipped())
	}
	p, err := proxy.New(cfg, []proxy.Check{bots}, events, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	for _, tc := range []struct {
		name, path, ua, xff string
		hints               map[string]string
		status              int
		reason              string
	}{
		{"browser", "/account", chromeLinux, "", nil, 200, ""},
		{"curl on browser-only route", "/account", "curl/8.5.0", "", nil, 403, "bot: non_browser"},
		{"curl elsewhere", "/items", "curl/8.5.0", "", nil, 200, ""},
		{"sqlmap", "/items", "sqlmap/1.8#stable (https://sqlmap.org)", "", nil, 403, "bot: scanner"},
		{"scanner from file", "/items", "EvilScan 2.0", "", nil, 403, "bot: scanner"},
		{"empty user agent", "/items", "", "", nil, 200, "flagged: bot: empty_user_agent"},
		{"headless chrome", "/items", strings.Replace(chromeLinux, "Chrome/", "HeadlessChrome/", 1), "", nil, 200, "flagged: bot: automation"},
		{"hints contradict the user agent", "/items", chromeLinux, "", map[string]string{"Sec-CH-UA-Platform": `"Windows"`}, 200, "flagged: bot: automation"},
		{"hints agree", "/items", chromeLinux, "", map[string]string{"Sec-CH-UA-Platform": `"Linux"`, "Sec-CH-UA-Mobile": "?0"}, 200, ""},
		{"crawler allowed by default", "/items", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "", nil, 200, ""},
		{"crawler blocked on its route", "/feed", "Mozilla/5.0 (compatible; bingbot/2.0)", "", nil, 403, "bot: crawler"},
		{"datacenter flagged", "/items", chromeLinux, "198.51.100.7", nil, 200, "flagged: bot: datacenter"},
		{"datacenter blocked on its route", "/feed", chromeLinux, "2001:db8::1", nil, 403, "bot: datacenter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			req.Header.Set("User-Agent", tc.ua)
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			for k, v := range tc.hints {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			ev := events.Last(t)
			if resp.StatusCode != tc.status || !strings.Contains(ev.Reason, tc.reason) || tc.reason == "" && ev.Reason != "" {
				t.Errorf("status %d, reason %q; want %d, %q", resp.StatusCode, ev.Reason, tc.status, tc.reason)
			}
		})
	}
}

func TestBotsConfigErrors(t *testing.T) {
	bad := proxy.DefaultBotsConfig()
	bad.Actions["robots"] = proxy.BotBlock
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `unknown category "robots"`) {
		t.Errorf("Validate = %v", err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "dc.txt")
	if err := os.WriteFile(f, []byte("10.0.0.0/8\nnot-a-cidr\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := proxy.DefaultBotsConfig()
	cfg.DatacenterFiles = []string{f}
	if _, err := NewBots(cfg); err == nil || !strings.Contains(err.Error(), "dc.txt:2") {
		t.Errorf("NewBots with a bad CIDR = %v, want the file and line", err)
	}
}

// TestBotsOnSharedLists loads the reference lists and reports how many of
// the crawler list's own example User-Agents are recognised.
func TestBotsOnSharedLists(t *testing.T) {
	dir := evaldata.Dir(t, "bot-ua-lists")
	cfg := proxy.DefaultBotsConfig()
	cfg.CrawlerFiles = []string{filepath.Join(dir, "monperrus-crawler-user-agents.json")}
	cfg.ScannerFiles = []string{filepath.Join(dir, "crs-scanners-user-agents.data")}
	cfg.DatacenterFiles = []string{filepath.Join(evaldata.Dir(t, "cloud-ip-ranges"), "amazon", "ipv4_merged.txt")}
	b, err := NewBots(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfg.CrawlerFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		Instances []string `json:"instances"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	n, hit := 0, 0
	for _, e := range list {
		for _, ua := range e.Instances {
			n++
			if b.uaCategory(ua) != "" {
				hit++
			}
		}
	}
	browsers := []string{chromeLinux,
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"}
	for _, ua := range browsers {
		if c := b.uaCategory(ua); c != "" {
			t.Errorf("browser %q classified as %s", ua, c)
		}
	}
	t.Logf("crawler patterns: %d loaded, %d skipped (not RE2); example crawler User-Agents recognised: %d of %d (%.1f%%)",
		b.Crawlers(), b.Skipped(), hit, n, 100*float64(hit)/float64(n))
	if float64(hit)/float64(n) < 0.95 {
		t.Errorf("only %d of %d example crawler User-Agents recognised", hit, n)
	}
}

// BenchmarkBots measures a classification with the shared crawler list:
// a User-Agent seen before (cached) and one never seen (the cost an
// attacker who varies the User-Agent can impose).
func BenchmarkBots(b *testing.B) {
	dir := os.Getenv("APIGUARD_DATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	list := filepath.Join(dir, "bot-ua-lists", "monperrus-crawler-user-agents.json")
	if _, err := os.Stat(list); err != nil {
		b.Skipf("shared data absent: %v", err)
	}
	cfg := proxy.DefaultBotsConfig()
	cfg.CrawlerFiles = []string{list}
	bots, err := NewBots(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			bots.uaCategory(chromeLinux)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			bots.uaCategory(chromeLinux + " r/" + strconv.Itoa(i))
		}
	})
}
