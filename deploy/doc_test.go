// Package deploy_test checks what deploys apiguard without a Docker engine
// or a cluster: the container images' build lines, docker-compose.yml
// (through `docker-compose config`), the Kubernetes manifests (rendered
// with the kustomize API and decoded strictly into k8s.io/api types), and
// the Prometheus and Alertmanager configs (promtool, amtool).
//
// The assertions are against the listeners and paths that docs/deploy.md
// documents (constants below); cmd/apiguard/deploy_test.go checks that the
// shipped apiguard configs load with the real config loader and that the
// admin listener serves those paths.
package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// The listeners and paths the deploy files rely on (docs/deploy.md,
// docs/proxy.md, docs/observability.md).
const (
	// upMetrics and upAdmin are `apiguard up`'s default listeners.
	upMetrics = "127.0.0.1:9464"
	upAdmin   = "127.0.0.1:9465"
	// metricsPath is served by --metrics-listen (and by the admin listener).
	metricsPath = "/metrics"
	// demoHealthPath is the demo upstream's health route.
	demoHealthPath = "/health"
	// probeBinary is the image's health check (deploy/probe).
	probeBinary = "/usr/local/bin/apiguard-probe"
	// natsURL is where every pod and service finds NATS: the compose
	// service "nats", the Helm release "nats".
	natsURL = "nats://nats:4222"
)

// adminPaths are the admin listener's GET endpoints a probe may ask. The
// metrics listener of `apiguard proxy`, `pipeline` and `up` answers them
// too, without a token (cmd/apiguard/health.go), so that the kubelet can.
var adminPaths = map[string]bool{"/healthz": true, "/readyz": true}

// probedOnMetrics reports whether args run an apiguard process whose
// metrics listener answers adminPaths.
func probedOnMetrics(args []string) bool {
	return len(args) > 0 && (args[0] == "proxy" || args[0] == "pipeline" || args[0] == "up")
}

// repoRoot is the repository's root folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Dir(filepath.Dir(file))
}

// requireTool returns the path of a command-line tool. Without it the test
// fails when $APIGUARD_REQUIRE_SERVERS is 1 (CI, where .ci/run installs
// it) and is skipped otherwise, saying how to get it.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " not found: apt-get install " + debianPackage
	if os.Getenv("APIGUARD_REQUIRE_SERVERS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
