package dashboards

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/testutil"
)

// TestPromQLParses: every expression of the Pipeline health dashboard is
// valid PromQL, as promtool checks a recording rule's expression.
func TestPromQLParses(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv(testutil.RequireServersEnv) != "" {
			t.Fatalf("promtool not found (%s is set): apt-get install prometheus", testutil.RequireServersEnv)
		}
		t.Skip("promtool not found: apt-get install prometheus (Debian) to check the dashboards' PromQL")
	}
	exprs := PromQL()
	if len(exprs) < 20 {
		t.Fatalf("%d expressions", len(exprs))
	}
	path := filepath.Join(t.TempDir(), "dashboards.rules.yml")
	if err := os.WriteFile(path, []byte(recordingRules(exprs)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	// And it does refuse a broken one, so the check is worth something.
	if err := os.WriteFile(path, []byte(recordingRules([]string{`sum by (le (rate(apiguard_proxy_requests_total[5m]))`})), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted a broken expression:\n%s", out)
	}
}

// recordingRules writes exprs as one group of recording rules, with
// Grafana's $__rate_interval as the interval it stands for.
func recordingRules(exprs []string) string {
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboards\n    rules:\n")
	for i, e := range exprs {
		e = strings.ReplaceAll(e, "$__rate_interval", "1m")
		fmt.Fprintf(&b, "      - record: apiguard_dashboard:expr_%d\n        expr: %q\n", i, e)
	}
	return b.String()
}

var (
	metricName = regexp.MustCompile(`\bapiguard_[a-z0-9_]+\b`)
	// Prometheus's own series the dashboard reads.
	prometheusOwn = regexp.MustCompile(`\b(up|ALERTS)\{`)
)

// TestPromQLMetricsExist: every apiguard metric the dashboard reads is
// one the code exports: its name (histograms without _bucket, _sum or
// _count) is a string literal in a non-test Go file of the repository.
func TestPromQLMetricsExist(t *testing.T) {
	exported := exportedNames(t, "..")
	used := 0
	for _, e := range PromQL() {
		names := metricName.FindAllString(e, -1)
		if len(names) == 0 && !prometheusOwn.MatchString(e) {
			t.Errorf("%q reads no apiguard metric", e)
		}
		for _, n := range names {
			used++
			if missing := missingMetric(n, exported); missing != "" {
				t.Errorf("%q: metric %s is not exported by the code", e, missing)
			}
		}
	}
	if used < 20 {
		t.Errorf("%d metric uses", used)
	}
	if missingMetric("apiguard_proxy_requests_totl", exported) == "" {
		t.Error("a misspelt metric passes the check")
	}
}

// missingMetric returns name if neither it nor its histogram base is
// exported, else "".
func missingMetric(name string, exported map[string]bool) string {
	if exported[name] {
		return ""
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] {
			return ""
		}
	}
	return name
}

// exportedNames returns the apiguard_… string literals in the non-test
// Go files under root.
func exportedNames(t *testing.T, root string) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(apiguard_[a-z0-9_]+)"`)
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
