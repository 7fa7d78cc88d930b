package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/apiguard/apiguard/proxy"
)

// TestDeployConfigs loads the apiguard configs that docker-compose.yml and
// the Kubernetes manifests ship, as those deployments run them (the same
// environment), with the real layered loader: an unknown key or a bad
// value fails here rather than in a container.
func TestDeployConfigs(t *testing.T) {
	files, err := filepath.Glob("../../deploy/kubernetes/base/config/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../deploy/compose/apiguard.yaml")
	if len(files) < 4 {
		t.Fatalf("found %v, want the compose config, the proxy's and the pipeline replicas'", files)
	}
	t.Setenv("APIGUARD_NATS_URL", "nats://nats:4222")
	t.Setenv("APIGUARD_CLICKHOUSE_ADDR", "clickhouse:9000")
	t.Setenv("APIGUARD_CLICKHOUSE_PASSWORD", "deploy-test")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg := DefaultConfig()
			if err := loadFile(f, &cfg); err != nil {
				t.Fatal(err)
			}
			applyEnv(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if cfg.Log.Format != "json" {
				t.Errorf("%s: log.format %q, want json for a container's log collector", f, cfg.Log.Format)
			}
		})
	}
}

// TestDeployAdminPaths: the paths the deploy files probe on the admin
// listener (adminPaths in deploy/doc_test.go) are the ones it serves.
func TestDeployAdminPaths(t *testing.T) {
	srv := httptest.NewServer((&proxy.Admin{}).Handler())
	t.Cleanup(srv.Close)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, want 200", path, resp.Status)
		}
	}
}
