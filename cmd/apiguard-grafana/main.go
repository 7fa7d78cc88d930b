// Command apiguard-grafana is the backend of apiguard's Grafana data
// source (apiguard-datasource). Grafana starts it as plugin.json names it
// and talks to it over the SDK's gRPC plugin protocol (hashicorp
// go-plugin's handshake on stdout); it is not meant to be run by hand.
// It logs to stderr, which Grafana copies into its own log.
package main

import (
	"log/slog"
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("plugin", plugin.PluginID)
	if err := datasource.Manage(plugin.PluginID, plugin.NewFactory(log), datasource.ManageOpts{}); err != nil {
		log.Error("serving the plugin", "err", err)
		os.Exit(1)
	}
}
