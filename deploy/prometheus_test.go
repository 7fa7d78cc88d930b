package deploy_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// promConfig is the part of a Prometheus config the assertions read.
type promConfig struct {
	RuleFiles []string `json:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []promTargets `json:"static_configs"`
		} `json:"alertmanagers"`
	} `json:"alerting"`
	ScrapeConfigs []struct {
		JobName       string        `json:"job_name"`
		StaticConfigs []promTargets `json:"static_configs"`
		FileSDConfigs []struct {
			Files []string `json:"files"`
		} `json:"file_sd_configs"`
	} `json:"scrape_configs"`
}

type promTargets struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

func readPromConfig(t *testing.T, rel string) promConfig {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	var c promConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return c
}

func TestPrometheusConfigsCheck(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	root := repoRoot(t)
	for _, f := range []string{"deploy/prometheus/prometheus.yml", "deploy/prometheus/compose.yml"} {
		if out, err := exec.Command(promtool, "check", "config", filepath.Join(root, f)).CombinedOutput(); err != nil {
			t.Errorf("promtool check config %s: %v\n%s", f, err, out)
		}
	}
}

func TestAlertmanagerConfigCheck(t *testing.T) {
	amtool := requireTool(t, "amtool", "prometheus-alertmanager")
	f := filepath.Join(repoRoot(t), "deploy/alertmanager/alertmanager.yml")
	if out, err := exec.Command(amtool, "check-config", f).CombinedOutput(); err != nil {
		t.Errorf("amtool check-config: %v\n%s", err, out)
	}
}

// TestPrometheusScrapesEachListenerOnce: the host config scrapes `up`'s
// metrics listener and not its admin listener (the same registry: every
// series would count twice), and no port where apiguard listens on nothing.
func TestPrometheusScrapesEachListenerOnce(t *testing.T) {
	c := readPromConfig(t, "deploy/prometheus/prometheus.yml")
	jobs := map[string][]string{}
	for _, sc := range c.ScrapeConfigs {
		jobs[sc.JobName] = []string{}
		if !strings.HasPrefix(sc.JobName, "apiguard") {
			t.Errorf("job %s: ApiguardDown watches jobs named apiguard*", sc.JobName)
		}
		for _, s := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], s.Targets...)
			if s.Labels["role"] == "" {
				t.Errorf("job %s: no role label (ApiguardDown's summary names it)", sc.JobName)
			}
		}
		for _, fsd := range sc.FileSDConfigs {
			for _, f := range fsd.Files {
				data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/prometheus", f))
				if err != nil {
					t.Errorf("job %s: %v", sc.JobName, err)
					continue
				}
				var groups []promTargets
				if err := yaml.Unmarshal(data, &groups); err != nil {
					t.Errorf("job %s: %s: %v", sc.JobName, f, err)
				}
				for _, g := range groups {
					jobs[sc.JobName] = append(jobs[sc.JobName], g.Targets...)
				}
			}
		}
	}
	if !slices.Equal(jobs["apiguard"], []string{upMetrics}) {
		t.Errorf("job apiguard scrapes %v, want up's metrics listener %s only", jobs["apiguard"], upMetrics)
	}
	for job, targets := range jobs {
		for _, target := range targets {
			if target == upAdmin {
				t.Errorf("job %s scrapes %s, up's admin listener: its /metrics is the metrics listener's registry again", job, target)
			}
		}
	}
	// The proxy and pipeline serve metrics only where told: their jobs
	// ship without targets, to be listed by the operator.
	for _, job := range []string{"apiguard-proxy", "apiguard-pipeline"} {
		if _, ok := jobs[job]; !ok {
			t.Errorf("no job %s", job)
		}
		if n := len(jobs[job]); n != 0 {
			t.Errorf("job %s ships with %d targets: `apiguard %s` serves no metrics unless given --metrics-listen", job, n, strings.TrimPrefix(job, "apiguard-"))
		}
	}
}

// TestPrometheusComposeTargets: each apiguard job of compose.yml scrapes
// a compose service on the port its --metrics-listen opens, and every
// service that serves metrics is scraped.
func TestPrometheusComposeTargets(t *testing.T) {
	f := loadCompose(t)
	c := readPromConfig(t, "deploy/prometheus/compose.yml")
	scraped := map[string]bool{}
	for _, sc := range c.ScrapeConfigs {
		if !strings.HasPrefix(sc.JobName, "apiguard") {
			continue
		}
		for _, s := range sc.StaticConfigs {
			for _, target := range s.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("job %s: target %q: %v", sc.JobName, target, err)
					continue
				}
				svc, ok := f.Services[host]
				if !ok {
					t.Errorf("job %s: target %s is not a compose service", sc.JobName, target)
					continue
				}
				if _, p, _ := net.SplitHostPort(flagValue(svc.Command, "--metrics-listen")); p != port {
					t.Errorf("job %s: target %s, but %s serves metrics on %q", sc.JobName, target, host, flagValue(svc.Command, "--metrics-listen"))
				}
				scraped[host] = true
			}
		}
	}
	for name, s := range f.Services {
		if flagValue(s.Command, "--metrics-listen") != "" && !scraped[name] {
			t.Errorf("%s serves metrics, but compose.yml does not scrape it", name)
		}
	}
	for _, am := range c.Alerting.Alertmanagers {
		for _, s := range am.StaticConfigs {
			for _, target := range s.Targets {
				if host, _, _ := net.SplitHostPort(target); f.Services[host].Image == "" {
					t.Errorf("alerting target %s is not a compose service", target)
				}
			}
		}
	}
}
