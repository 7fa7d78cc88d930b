package deploy_test

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeFile is the part of `docker-compose config`'s output the
// assertions read (docker-compose 1.29 prints ports and volumes as strings).
type composeFile struct {
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image       string            `json:"image"`
	Build       map[string]any    `json:"build"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Ports    []any    `json:"ports"` // "host:port:port/tcp", or {published, target}
	Volumes  []string `json:"volumes"`
	Profiles []string `json:"profiles"`
	Restart  string   `json:"restart"`
	ReadOnly bool     `json:"read_only"`
	User     string   `json:"user"`
}

const apiguardImage = "apiguard/apiguard:dev"

// composeOutput caches `docker-compose config`'s output (a few seconds
// each time) for the tests of this package.
var composeOutput struct {
	once sync.Once
	out  []byte
	err  error
}

// loadCompose validates docker-compose.yml with `docker-compose config`
// (every profile on) and decodes what it prints.
func loadCompose(t *testing.T) composeFile {
	t.Helper()
	bin := requireTool(t, "docker-compose", "docker-compose")
	composeOutput.once.Do(func() { composeOutput.out, composeOutput.err = runComposeConfig(bin, repoRoot(t)) })
	if composeOutput.err != nil {
		t.Fatal(composeOutput.err)
	}
	var f composeFile
	if err := yaml.Unmarshal(composeOutput.out, &f); err != nil {
		t.Fatalf("decoding docker-compose config's output: %v\n%s", err, composeOutput.out)
	}
	return f
}

// runComposeConfig runs `docker-compose config` on the repository's file.
func runComposeConfig(bin, root string) ([]byte, error) {
	cmd := exec.Command(bin, "--project-directory", root, "-f", filepath.Join(root, "docker-compose.yml"), "--profile", "demo", "config")
	// The file's defaults, not the caller's overrides.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "APIGUARD_UPSTREAM" && k != "APIGUARD_CLICKHOUSE_PASSWORD" &&
			k != "GRAFANA_ADMIN_PASSWORD" && !strings.HasPrefix(k, "COMPOSE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("docker-compose config: %w\n%s", err, stderr.String())
	}
	return out, nil
}

// flagValue returns the value after name in args, or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func TestComposeServices(t *testing.T) {
	f := loadCompose(t)
	want := []string{"alertmanager", "clickhouse", "demo-traffic", "demo-upstream", "grafana", "migrate", "nats",
		"pipeline", "prometheus", "proxy"}
	var got []string
	for name := range f.Services {
		got = append(got, name)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	for _, name := range []string{"demo-upstream", "demo-traffic"} {
		if !slices.Equal(f.Services[name].Profiles, []string{"demo"}) {
			t.Errorf("%s: profiles %v, want [demo]", name, f.Services[name].Profiles)
		}
	}
	for name, s := range f.Services {
		if name != "demo-upstream" && name != "demo-traffic" && len(s.Profiles) > 0 {
			t.Errorf("%s: profiles %v: `docker compose up` would not start it", name, s.Profiles)
		}
	}

	// NATS with JetStream on a volume; ClickHouse on a volume.
	nats := f.Services["nats"]
	if !slices.Contains(nats.Command, "--jetstream") && !slices.Contains(nats.Command, "-js") {
		t.Errorf("nats: command %v runs without JetStream", nats.Command)
	}
	if sd := flagValue(nats.Command, "--store_dir"); sd == "" || !hasVolumeAt(f, nats, sd) {
		t.Errorf("nats: store dir %q is not on a named volume (%v)", sd, nats.Volumes)
	}
	if !hasVolumeAt(f, f.Services["clickhouse"], "/var/lib/clickhouse") {
		t.Errorf("clickhouse: /var/lib/clickhouse is not on a named volume")
	}
	if !strings.HasPrefix(f.Services["clickhouse"].Image, "clickhouse/clickhouse-server:") {
		t.Errorf("clickhouse: image %q", f.Services["clickhouse"].Image)
	}

	// The apiguard services run the image as its non-root user, from the
	// repository's Dockerfile, and find NATS where it is.
	for _, name := range []string{"migrate", "pipeline", "proxy", "demo-upstream", "demo-traffic"} {
		s := f.Services[name]
		if s.Image != apiguardImage || s.Build["dockerfile"] != "Dockerfile" {
			t.Errorf("%s: image %q built from %v, want %s from Dockerfile", name, s.Image, s.Build["dockerfile"], apiguardImage)
		}
		if !s.ReadOnly || s.User != "65532:65532" {
			t.Errorf("%s: read_only %v, user %q, want a read-only root as 65532", name, s.ReadOnly, s.User)
		}
		if !strings.HasPrefix(name, "demo-") && s.Environment["APIGUARD_NATS_URL"] != natsURL {
			t.Errorf("%s: APIGUARD_NATS_URL = %q, want %s", name, s.Environment["APIGUARD_NATS_URL"], natsURL)
		}
	}
	if got := f.Services["pipeline"].Environment["APIGUARD_CLICKHOUSE_ADDR"]; got != "clickhouse:9000" {
		t.Errorf("pipeline: APIGUARD_CLICKHOUSE_ADDR = %q", got)
	}
	if got := flagValue(f.Services["proxy"].Command, "--upstream"); got != "http://demo-upstream:9000" {
		t.Errorf("proxy: --upstream %q, want the demo upstream by default", got)
	}
	if got := flagValue(f.Services["demo-upstream"].Command, "--listen"); got != "0.0.0.0:9000" {
		t.Errorf("demo-upstream: --listen %q, want 0.0.0.0:9000 (the proxy's upstream)", got)
	}
	if got := flagValue(f.Services["demo-traffic"].Command, "--target"); got != "http://proxy:"+publishedPort(f.Services["proxy"]) {
		t.Errorf("demo-traffic: --target %q, want the proxy", got)
	}
	if !hasVolumeAt(f, f.Services["proxy"], "/var/lib/apiguard/var") {
		t.Errorf("proxy: the spool (var/spool under /var/lib/apiguard) is not on a named volume")
	}

	// Published ports.
	for name, port := range map[string]string{"proxy": "8080", "grafana": "3000", "nats": "4222", "prometheus": "9090", "alertmanager": "9093"} {
		if !publishes(f.Services[name], port) {
			t.Errorf("%s: ports %v do not publish %s", name, f.Services[name].Ports, port)
		}
	}
}

// hasVolumeAt reports whether s mounts one of f's named volumes at dst.
func hasVolumeAt(f composeFile, s composeService, dst string) bool {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == dst {
			_, named := f.Volumes[parts[0]]
			return named
		}
	}
	return false
}

// publishedPort is the container port of s's first published port.
func publishedPort(s composeService) string {
	for _, port := range s.Ports {
		switch port := port.(type) {
		case string:
			spec, _, _ := strings.Cut(port, "/")
			return spec[strings.LastIndex(spec, ":")+1:]
		case map[string]any:
			return fmt.Sprint(port["target"])
		}
	}
	return ""
}

// publishes reports whether s publishes container port p.
func publishes(s composeService, p string) bool {
	for _, port := range s.Ports {
		switch port := port.(type) {
		case string:
			spec, _, _ := strings.Cut(port, "/")
			if strings.HasSuffix(spec, ":"+p) {
				return true
			}
		case map[string]any:
			if fmt.Sprint(port["target"]) == p {
				return true
			}
		}
	}
	return false
}

func TestComposeHealthAndOrder(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		oneShot := s.Restart == "no"
		if name == "migrate" && !oneShot {
			t.Errorf("migrate: restart %q, want \"no\" (it runs once)", s.Restart)
		}
		if s.Healthcheck == nil && !oneShot && name != "demo-traffic" {
			t.Errorf("%s: no healthcheck", name)
		}
		for dep, d := range s.DependsOn {
			target, ok := f.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s: depends on %s, which is not a service", name, dep)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				t.Errorf("%s: waits for %s to be healthy, which has no healthcheck", name, dep)
			case d.Condition == "service_completed_successfully" && target.Restart != "no":
				t.Errorf("%s: waits for %s to complete, which restarts", name, dep)
			case d.Condition != "service_healthy" && d.Condition != "service_completed_successfully":
				t.Errorf("%s: depends on %s with condition %q, want it healthy or completed", name, dep, d.Condition)
			}
		}
	}
	wantDeps := map[string][]string{
		"migrate":      {"clickhouse"},
		"pipeline":     {"migrate", "nats"},
		"proxy":        {"nats"},
		"demo-traffic": {"demo-upstream", "pipeline", "proxy"},
		"grafana":      {"clickhouse", "migrate", "nats", "prometheus"},
		"prometheus":   {"alertmanager"},
	}
	for name, want := range wantDeps {
		var got []string
		for dep := range f.Services[name].DependsOn {
			got = append(got, dep)
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: depends on %v, want %v", name, got, want)
		}
	}

	// The apiguard healthchecks ask the image's probe for a path the
	// process serves, on the port its flags give that listener.
	for _, name := range []string{"pipeline", "proxy", "demo-upstream"} {
		s := f.Services[name]
		test := s.Healthcheck.Test
		if len(test) != 3 || test[0] != "CMD" || test[1] != probeBinary {
			t.Errorf("%s: healthcheck %v, want [CMD %s URL]", name, test, probeBinary)
			continue
		}
		checkProbeURL(t, name, test[2], s.Command)
	}
	if got := f.Services["proxy"].Healthcheck.Test; !strings.HasSuffix(got[len(got)-1], "/readyz") {
		t.Errorf("proxy: healthcheck %v, want /readyz (healthy once the enforcement state is loaded)", got)
	}
	if got := f.Services["pipeline"].Healthcheck.Test; !strings.HasSuffix(got[len(got)-1], "/readyz") {
		t.Errorf("pipeline: healthcheck %v, want /readyz (healthy once every partition consumes)", got)
	}
}

// checkProbeURL checks that a probe's URL asks a listener that args open,
// on loopback inside the container, for a path that listener serves.
func checkProbeURL(t *testing.T, name, raw string, args []string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("%s: probe URL %q: %v", name, raw, err)
		return
	}
	if u.Hostname() != "127.0.0.1" {
		t.Errorf("%s: probe URL %s, want it on 127.0.0.1 (inside the container)", name, raw)
	}
	var listen string
	switch {
	case adminPaths[u.Path] && probedOnMetrics(args) && strings.HasSuffix(flagValue(args, "--metrics-listen"), ":"+u.Port()):
		listen = flagValue(args, "--metrics-listen")
	case adminPaths[u.Path]:
		listen = flagValue(args, "--admin-listen")
	case u.Path == metricsPath:
		listen = flagValue(args, "--metrics-listen")
	case u.Path == demoHealthPath && slices.Contains(args, "demo-upstream"):
		listen = flagValue(args, "--listen")
	default:
		t.Errorf("%s: probe path %s is not served (want /healthz or /readyz on the admin listener or a proxy's or pipeline's metrics listener, /metrics on the metrics one)", name, u.Path)
		return
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Errorf("%s: probe %s, but args %v open no listener for it", name, raw, args)
		return
	}
	if port != u.Port() {
		t.Errorf("%s: probe %s, but that listener is on %s", name, raw, listen)
	}
}

func TestComposeMounts(t *testing.T) {
	f := loadCompose(t)
	root := repoRoot(t)
	for name, s := range f.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if _, named := f.Volumes[src]; named {
				continue
			}
			rel, err := filepath.Rel(root, src)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s: mounts %s, outside the repository", name, src)
				continue
			}
			if _, err := os.Stat(src); err != nil {
				t.Errorf("%s: mounts %s, which is not in the repository: %v", name, rel, err)
			}
		}
	}
}

// placeholder matches Grafana's ${VAR} placeholders in provisioning files.
var placeholder = regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`)

// optionalGrafanaEnv are the data source's placeholders a deployment may
// leave unset (NATS without authentication).
var optionalGrafanaEnv = map[string]bool{"APIGUARD_NATS_USER": true, "APIGUARD_NATS_PASSWORD": true, "APIGUARD_NATS_TOKEN": true}

// grafanaPlaceholders lists the variables the provisioned data sources
// need from Grafana's environment.
func grafanaPlaceholders(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "dashboards/provisioning/datasources/apiguard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range placeholder.FindAllStringSubmatch(string(data), -1) {
		if !optionalGrafanaEnv[m[1]] && !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	if len(out) == 0 {
		t.Fatal("the data sources' provisioning file has no ${…} placeholders")
	}
	return out
}

func TestComposeGrafana(t *testing.T) {
	f := loadCompose(t)
	g := f.Services["grafana"]
	if g.Build["dockerfile"] != "deploy/grafana/Dockerfile" {
		t.Errorf("grafana: built from %v, want deploy/grafana/Dockerfile", g.Build["dockerfile"])
	}
	for _, v := range grafanaPlaceholders(t) {
		if g.Environment[v] == "" {
			t.Errorf("grafana: $%s, which the data sources use, is not set", v)
		}
	}
	if g.Environment["APIGUARD_NATS_URL"] != natsURL {
		t.Errorf("grafana: APIGUARD_NATS_URL = %q", g.Environment["APIGUARD_NATS_URL"])
	}
	if g.Environment["APIGUARD_CLICKHOUSE_PASSWORD"] != f.Services["clickhouse"].Environment["CLICKHOUSE_PASSWORD"] ||
		g.Environment["APIGUARD_CLICKHOUSE_USER"] != f.Services["clickhouse"].Environment["CLICKHOUSE_USER"] {
		t.Errorf("grafana's ClickHouse user or password differs from ClickHouse's")
	}
	mounts := map[string]string{}
	for _, v := range g.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			rel, _ := filepath.Rel(repoRoot(t), parts[0])
			mounts[parts[1]] = rel
		}
	}
	for dst, src := range map[string]string{
		"/etc/grafana/provisioning/datasources": "dashboards/provisioning/datasources",
		"/etc/grafana/provisioning/dashboards":  "dashboards/provisioning/dashboards",
		"/etc/grafana/provisioning/plugins":     "dashboards/provisioning/plugins",
		"/var/lib/grafana/dashboards/apiguard":  "dashboards/json",
	} {
		if mounts[dst] != src {
			t.Errorf("grafana: %s mounts %q, want %s", dst, mounts[dst], src)
		}
	}
}
