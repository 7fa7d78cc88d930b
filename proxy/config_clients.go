package proxy

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// The configuration of the checks in proxy/clients (decoys, bots, origins,
// rate limits). It stays here, in proxy.Config, since the package that
// reads the configuration cannot import the checks that use it.

// DecoyConfig lists paths no real client calls (a leaked-looking admin
// route, /.env, an old API version). A path ending in "/*" matches what is
// under it.
type DecoyConfig struct {
	Paths []string `yaml:"paths"`
	// Body is what a decoy answers, with status 404; make it look like the
	// upstream's own 404. The default is net/http's.
	Body        string `yaml:"body"`
	ContentType string `yaml:"content_type"`
}

// DefaultDecoyConfig returns no decoys and net/http's 404 page.
func DefaultDecoyConfig() DecoyConfig {
	return DecoyConfig{Body: "404 page not found\n", ContentType: "text/plain; charset=utf-8"}
}

// Validate reports the first bad field by its config key.
func (c DecoyConfig) Validate() error {
	for i, p := range c.Paths {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("proxy.decoys.paths[%d]: %q, want a path starting with /", i, p)
		}
	}
	return nil
}

// Bot categories, each with its own action.
const (
	BotEmptyUA    = "empty_user_agent" // no User-Agent at all
	BotNonBrowser = "non_browser"      // not a browser, on a browser-only route
	BotCrawler    = "crawler"          // a known crawler (from user_agent_files)
	BotScanner    = "scanner"          // a security scanner
	BotAutomation = "automation"       // headless browsers and automation frameworks
	BotDatacenter = "datacenter"       // from a datacenter or cloud range
)

// Bot actions.
const (
	BotAllow = "allow"
	BotFlag  = "flag"  // let through, mark the event
	BotBlock = "block" // 403
)

// BotsConfig configures the bots check. Actions maps a category to allow,
// flag or block; Routes overrides it per route template, and marks
// browser-only routes.
type BotsConfig struct {
	// CrawlerFiles hold crawler User-Agent patterns: a JSON array of
	// {"pattern": …} objects (the crawler-user-agents format) or of
	// strings, or text with one pattern a line (# comments). Patterns Go's
	// regexp cannot compile (look-behinds) are skipped and counted.
	CrawlerFiles []string `yaml:"crawler_files"`
	// ScannerFiles hold scanner User-Agent substrings, one a line (#
	// comments), added to the built-in list.
	ScannerFiles []string `yaml:"scanner_files"`
	// DatacenterFiles hold CIDRs, one a line (# comments).
	DatacenterFiles []string            `yaml:"datacenter_files"`
	Actions         map[string]string   `yaml:"actions"`
	Routes          map[string]BotRoute `yaml:"routes"`
}

// BotRoute overrides bot handling for one route.
type BotRoute struct {
	// BrowserOnly routes serve browsers: anything else is non_browser.
	BrowserOnly bool              `yaml:"browser_only"`
	Actions     map[string]string `yaml:"actions"`
}

// DefaultBotsConfig returns the defaults: scanners blocked, empty user
// agents, automation and datacenter traffic flagged, crawlers allowed.
func DefaultBotsConfig() BotsConfig {
	return BotsConfig{Actions: map[string]string{
		BotEmptyUA: BotFlag, BotNonBrowser: BotBlock, BotCrawler: BotAllow,
		BotScanner: BotBlock, BotAutomation: BotFlag, BotDatacenter: BotFlag,
	}}
}

var botCategories = []string{BotEmptyUA, BotNonBrowser, BotCrawler, BotScanner, BotAutomation, BotDatacenter}

// Validate reports the first bad field by its config key.
func (c BotsConfig) Validate() error {
	check := func(key string, m map[string]string) error {
		for cat, act := range m {
			if !containsStr(botCategories, cat) {
				return fmt.Errorf("%s: unknown category %q, want one of %s", key, cat, strings.Join(botCategories, ", "))
			}
			if act != BotAllow && act != BotFlag && act != BotBlock {
				return fmt.Errorf("%s.%s: %q, want allow, flag or block", key, cat, act)
			}
		}
		return nil
	}
	if err := check("proxy.bots.actions", c.Actions); err != nil {
		return err
	}
	for r, o := range c.Routes {
		if err := check(fmt.Sprintf("proxy.bots.routes[%q].actions", r), o.Actions); err != nil {
			return err
		}
	}
	return nil
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// OriginsConfig says which browser origins may call the API. An empty
// Allowed list (globally and for the route) checks nothing.
type OriginsConfig struct {
	// Allowed origins, "https://shop.example"; "*" allows any (and then
	// credentials are never allowed).
	Allowed          []string                `yaml:"allowed"`
	AllowHeaders     []string                `yaml:"allow_headers"`
	AllowMethods     []string                `yaml:"allow_methods"`
	ExposeHeaders    []string                `yaml:"expose_headers"`
	AllowCredentials bool                    `yaml:"allow_credentials"`
	MaxAge           time.Duration           `yaml:"max_age"`
	Routes           map[string]RouteOrigins `yaml:"routes"`
}

// RouteOrigins overrides the allowed origins for one route.
type RouteOrigins struct {
	Allowed []string `yaml:"allowed"`
}

// DefaultOriginsConfig returns the defaults: no origin check; when
// origins are set, the usual methods and headers, preflights cached 10
// minutes.
func DefaultOriginsConfig() OriginsConfig {
	return OriginsConfig{
		AllowHeaders: []string{"Content-Type", "Authorization", "X-API-Key"},
		AllowMethods: []string{"GET", "POST", "PUT", "PATCH", "DELETE"},
		MaxAge:       10 * time.Minute,
	}
}

// Validate reports the first bad field by its config key.
func (c OriginsConfig) Validate() error {
	check := func(key string, list []string) error {
		for i, o := range list {
			if o == "*" {
				continue
			}
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
				return fmt.Errorf("%s[%d]: %q, want scheme://host[:port] or *", key, i, o)
			}
		}
		return nil
	}
	if err := check("proxy.origins.allowed", c.Allowed); err != nil {
		return err
	}
	for r, o := range c.Routes {
		if err := check(fmt.Sprintf("proxy.origins.routes[%q].allowed", r), o.Allowed); err != nil {
			return err
		}
	}
	if c.MaxAge < 0 {
		return fmt.Errorf("proxy.origins.max_age: must not be negative")
	}
	return nil
}

// Limit is a token bucket: Rate requests a second on average, Burst at
// once. A zero Rate is no limit.
type Limit struct {
	Rate  float64 `yaml:"rate"`
	Burst float64 `yaml:"burst"`
}

// RateLimitConfig configures the rate limits: per consumer per API by
// plan, per client IP for requests without a verified key, and per API
// over all consumers.
type RateLimitConfig struct {
	// Plans are the limits per verified API key per API, by the key's plan.
	Plans map[string]Limit `yaml:"plans"`
	// DefaultPlan applies to keys whose plan is not in Plans.
	DefaultPlan string `yaml:"default_plan"`
	// Anonymous is the limit per client IP per API without a verified key.
	Anonymous Limit `yaml:"anonymous"`
	// APIs are global limits per API, over every consumer.
	APIs map[string]Limit `yaml:"apis"`
}

// DefaultRateLimitConfig sets no limits.
func DefaultRateLimitConfig() RateLimitConfig { return RateLimitConfig{} }

// Validate reports the first bad field by its config key.
func (c RateLimitConfig) Validate() error {
	check := func(key string, l Limit) error {
		if l.Rate < 0 || l.Burst < 0 || l.Rate > 0 && l.Burst < 1 {
			return fmt.Errorf("%s: rate %g, burst %g; want rate ≥ 0 and, with a rate, burst ≥ 1", key, l.Rate, l.Burst)
		}
		return nil
	}
	for name, l := range c.Plans {
		if err := check(fmt.Sprintf("proxy.rate_limits.plans[%q]", name), l); err != nil {
			return err
		}
	}
	if _, ok := c.Plans[c.DefaultPlan]; c.DefaultPlan != "" && !ok {
		return fmt.Errorf("proxy.rate_limits.default_plan: %q is not in plans", c.DefaultPlan)
	}
	if err := check("proxy.rate_limits.anonymous", c.Anonymous); err != nil {
		return err
	}
	for api, l := range c.APIs {
		if err := check(fmt.Sprintf("proxy.rate_limits.apis[%q]", api), l); err != nil {
			return err
		}
	}
	return nil
}
