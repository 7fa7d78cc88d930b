package plugin_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"go.uber.org/goleak"

	"github.com/apiguard/apiguard/dashboards/plugin"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestDispose: after an action (which starts the allow entries' watcher)
// and a live stream that ended, Dispose leaves no goroutine behind.
func TestDispose(t *testing.T) {
	js, _ := testutil.Topology(t)
	ignore := goleak.IgnoreCurrent()
	cfg := plugin.DefaultSettings()
	cfg.NATSURL, cfg.ClickHouseAddr, cfg.Timeout = js.Conn().ConnectedUrl(), "127.0.0.1:1", "1s"
	ds, err := plugin.NewDatasource(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if status, resp := call(t, ds, editor, "POST", "actions/block", `{"kind":"sub","value":"u1","ttl":"1m"}`); status != 200 {
		t.Fatalf("block: %d %+v", status, resp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ds.RunStream(ctx, &backend.RunStreamRequest{Path: "actions"}, backend.NewStreamSender(make(packets, 16))); err != nil {
		t.Errorf("RunStream: %v", err)
	}
	ds.Dispose()
	// The server drops an ephemeral consumer some time after its client
	// left; its goroutines are the server's, not the data source's.
	server := "github.com/nats-io/nats-server/v2/server.(*consumer)."
	goleak.VerifyNone(t, ignore, goleak.IgnoreTopFunction(server+"loopAndGatherMsgs"),
		goleak.IgnoreTopFunction(server+"processInboundAcks"), goleak.IgnoreTopFunction(server+"processInboundNextMsgReqs"))
}
