package plugin_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/apiguard/apiguard/dashboards/plugin"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestCheckHealthFailures: each part that is missing is named with a
// clear message, and the status is an error; no secret is in the answer.
func TestCheckHealthFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("no ClickHouse", func(t *testing.T) {
		ds, _, _ := newDatasource(t)
		r, err := ds.CheckHealth(ctx, &backend.CheckHealthRequest{})
		if err != nil || r.Status != backend.HealthStatusError || !strings.Contains(r.Message, "NATS nats://127.0.0.1") ||
			!strings.Contains(r.Message, "streams and enforcement bucket present") || !strings.Contains(r.Message, "ClickHouse 127.0.0.1:1 is not reachable") {
			t.Errorf("health: %v %v %q", err, r.Status, r.Message)
		}
	})
	t.Run("no topology, no NATS", func(t *testing.T) {
		srv := testutil.JetStream(t, -1, "")
		cfg := plugin.DefaultSettings()
		cfg.NATSURL, cfg.ClickHouseAddr, cfg.Timeout = srv.ClientURL(), "127.0.0.1:1", "1s"
		cfg.ClickHousePassword = secret.String("ch-hunter2")
		ds, err := plugin.NewDatasource(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Dispose()
		testutil.Eventually(t, 5e9, func() bool {
			r, _ := ds.CheckHealth(ctx, &backend.CheckHealthRequest{})
			return strings.Contains(r.Message, "missing (start the apiguard pipeline")
		}, "health does not say the streams are missing")
		srv.Shutdown()
		srv.WaitForShutdown()
		r, err := ds.CheckHealth(ctx, &backend.CheckHealthRequest{})
		if err != nil || r.Status != backend.HealthStatusError || !strings.Contains(r.Message, "is not reachable") {
			t.Errorf("health without NATS: %v %q", err, r.Message)
		}
		if strings.Contains(r.Message+string(r.JSONDetails), "hunter2") {
			t.Errorf("health shows a secret: %s %s", r.Message, r.JSONDetails)
		}
	})
}

// TestCheckHealthNoSchema: a ClickHouse that answers but where no
// migration was applied is an error that says to run 'apiguard migrate'.
func TestCheckHealthNoSchema(t *testing.T) {
	ch := testutil.StartClickHouse(t)
	js, _ := testutil.Topology(t)
	cfg := plugin.DefaultSettings()
	cfg.NATSURL, cfg.ClickHouseAddr, cfg.Timeout = js.Conn().ConnectedUrl(), ch.Addr, "2s"
	ds, err := plugin.NewDatasource(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Dispose()
	r, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if err != nil || r.Status != backend.HealthStatusError || !strings.Contains(r.Message, "streams and enforcement bucket present") ||
		!strings.Contains(r.Message, "run 'apiguard migrate'") {
		t.Errorf("health: %v %v %q", err, r.Status, r.Message)
	}
}
