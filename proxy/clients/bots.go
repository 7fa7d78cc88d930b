package clients

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/apiguard/apiguard/proxy"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/gaissmai/bart"

	"github.com/apiguard/apiguard/event"
)

// BotsName is the name of the bots check in events.
const BotsName = "bots"

// builtinScanners are security scanners and attack tools that announce
// themselves in the User-Agent.
var builtinScanners = []string{
	"sqlmap", "nikto", "nuclei", "masscan", "zgrab", "nmap", "wpscan", "dirbuster", "gobuster", "ffuf",
	"feroxbuster", "acunetix", "nessus", "openvas", "w3af", "arachni", "skipfish", "wfuzz", "jaeles",
	"commix", "xsstrike", "havij", "netsparker", "qualys", "whatweb", "zap/", "burp", "hydra", "medusa",
}

// builtinAutomation are headless browsers and automation frameworks.
var builtinAutomation = []string{"headlesschrome", "phantomjs", "selenium", "webdriver", "puppeteer", "playwright", "slimerjs", "electron/"}

// browserMarkers say a User-Agent claims to be a browser.
var browserMarkers = []string{"mozilla/", "chrome/", "safari/", "firefox/", "edg/", "opera/"}

// Bots sorts requests into bot categories by User-Agent, client hints and
// client IP, and applies each category's action. It holds its lists in
// memory; classifications of a User-Agent are cached (bounded).
type Bots struct {
	cfg        proxy.BotsConfig
	crawlers   *patternSet
	scanners   []string
	datacenter *bart.Lite
	skipped    int

	mu    sync.RWMutex
	cache map[string]string // User-Agent → category ("" for none)
}

// maxUACache bounds the User-Agent cache: an attacker who varies the
// User-Agent only evicts it.
const maxUACache = 8192

// NewBots loads the configured files. It reports which file and line is
// bad; patterns Go cannot compile are skipped and counted (Skipped).
func NewBots(cfg proxy.BotsConfig) (*Bots, error) {
	b := &Bots{cfg: cfg, scanners: append([]string(nil), builtinScanners...), datacenter: new(bart.Lite),
		cache: map[string]string{}}
	var pats []string
	for _, f := range cfg.CrawlerFiles {
		ps, err := readPatterns(f)
		if err != nil {
			return nil, err
		}
		pats = append(pats, ps...)
	}
	b.crawlers, b.skipped = newPatternSet(pats)
	for _, f := range cfg.ScannerFiles {
		lines, err := readLines(f)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			b.scanners = append(b.scanners, strings.ToLower(l.text))
		}
	}
	for _, f := range cfg.DatacenterFiles {
		lines, err := readLines(f)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			p, err := netip.ParsePrefix(l.text)
			if err != nil {
				return nil, fmt.Errorf("proxy.bots.datacenter_files: %s:%d: %w", f, l.n, err)
			}
			b.datacenter.Insert(p.Masked())
		}
	}
	return b, nil
}

// Skipped is the number of crawler patterns Go's regexp could not compile.
func (b *Bots) Skipped() int { return b.skipped }

// Crawlers is the number of crawler patterns loaded.
func (b *Bots) Crawlers() int { return b.crawlers.len() }

type line struct {
	n    int
	text string
}

func readLines(path string) ([]line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("proxy.bots: %w", err)
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		out = append(out, line{n, t})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("proxy.bots: reading %s: %w", path, err)
	}
	return out, nil
}

func readPatterns(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proxy.bots.crawler_files: %w", err)
	}
	if t := strings.TrimSpace(string(data)); strings.HasPrefix(t, "[") {
		var objs []struct {
			Pattern string `json:"pattern"`
		}
		if err := json.Unmarshal(data, &objs); err == nil {
			out := make([]string, 0, len(objs))
			for _, o := range objs {
				if o.Pattern != "" {
					out = append(out, o.Pattern)
				}
			}
			return out, nil
		}
		var strs []string
		if err := json.Unmarshal(data, &strs); err != nil {
			return nil, fmt.Errorf("proxy.bots.crawler_files: %s: want a JSON array of strings or of {\"pattern\": …}: %w", path, err)
		}
		return strs, nil
	}
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.text
	}
	return out, nil
}

// Name implements Check.
func (*Bots) Name() string { return BotsName }

// Check implements Check.
func (b *Bots) Check(x *proxy.Exchange) *proxy.Denial {
	route, routed := b.cfg.Routes[x.API]
	action := func(cat string) string {
		if a, ok := route.Actions[cat]; routed && ok {
			return a
		}
		if a, ok := b.cfg.Actions[cat]; ok {
			return a
		}
		return proxy.BotAllow
	}
	for _, cat := range b.classify(x, routed && route.BrowserOnly) {
		switch action(cat) {
		case proxy.BotBlock:
			return &proxy.Denial{Status: http.StatusForbidden, Decision: event.Decision_DECISION_BLOCK,
				Reason: "bot: " + cat + " (" + clip(x.Req.UserAgent(), 80) + ")"}
		case proxy.BotFlag:
			if x.Event.Check == "" {
				x.Event.Check, x.Event.Reason = BotsName, "flagged: bot: "+cat
			}
		}
	}
	return nil
}

// classify returns the categories a request falls in, most specific
// first.
func (b *Bots) classify(x *proxy.Exchange, browserOnly bool) []string {
	var cats []string
	ua := x.Req.UserAgent()
	if ua == "" {
		cats = append(cats, proxy.BotEmptyUA)
	} else if c := b.uaCategory(ua); c != "" {
		cats = append(cats, c)
	}
	if ua != "" && (b.automationHints(x.Req, ua)) && !slices.Contains(cats, proxy.BotAutomation) {
		cats = append(cats, proxy.BotAutomation)
	}
	if browserOnly && !isBrowser(ua) {
		cats = append(cats, proxy.BotNonBrowser)
	}
	if x.ClientIP.IsValid() && b.datacenter.Contains(x.ClientIP.Unmap()) {
		cats = append(cats, proxy.BotDatacenter)
	}
	return cats
}

func isBrowser(ua string) bool {
	l := strings.ToLower(ua)
	for _, m := range browserMarkers {
		if strings.Contains(l, m) {
			return true
		}
	}
	return false
}

// uaCategory classifies a User-Agent alone: scanner, automation, crawler
// or "" (cached).
func (b *Bots) uaCategory(ua string) string {
	b.mu.RLock()
	c, ok := b.cache[ua]
	b.mu.RUnlock()
	if ok {
		return c
	}
	l := strings.ToLower(ua)
	switch {
	case containsAny(l, b.scanners):
		c = proxy.BotScanner
	case containsAny(l, builtinAutomation):
		c = proxy.BotAutomation
	case b.crawlers.match(ua):
		c = proxy.BotCrawler
	}
	b.mu.Lock()
	if len(b.cache) >= maxUACache {
		clear(b.cache)
	}
	b.cache[ua] = c
	b.mu.Unlock()
	return c
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// automationHints looks past the User-Agent: client hints that name a
// headless brand, or a Chromium User-Agent whose client hints say
// otherwise (a script copying a browser's User-Agent but not its hints).
func (b *Bots) automationHints(r *http.Request, ua string) bool {
	chUA := r.Header.Get("Sec-Ch-Ua")
	if strings.Contains(strings.ToLower(chUA), "headless") {
		return true
	}
	if p := r.Header.Get("Sec-Ch-Ua-Platform"); p != "" {
		platform := strings.Trim(p, `"`)
		l := strings.ToLower(ua)
		switch {
		case platform == "Windows" && !strings.Contains(l, "windows"),
			platform == "macOS" && !strings.Contains(l, "mac os"),
			platform == "Linux" && !(strings.Contains(l, "linux") || strings.Contains(l, "x11")),
			platform == "Android" && !strings.Contains(l, "android"):
			return true
		}
	}
	if m := r.Header.Get("Sec-Ch-Ua-Mobile"); m == "?1" && !strings.Contains(strings.ToLower(ua), "mobile") {
		return true
	}
	return false
}
