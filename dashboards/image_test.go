package dashboards

import (
	"os"
	"strings"
	"testing"
)

// TestGrafanaImageAllowsRowActions checks that the Grafana image the stack
// ships lets the dashboards' row actions through: Grafana refuses an
// action's POST unless its URL matches GF_SECURITY_ACTIONS_ALLOW_POST_URL.
func TestGrafanaImageAllowsRowActions(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	want := "GF_SECURITY_ACTIONS_ALLOW_POST_URL=" + ActionsPath + "*"
	if !strings.Contains(string(b), want) {
		t.Errorf("deploy/grafana/Dockerfile does not set %s: the dashboards' block, unblock and allow actions would be refused by Grafana", want)
	}
}
