// Command apiguard-grafana is the backend of apiguard's Grafana data
// source (apiguard-datasource). Grafana starts it as plugin.json names it
// and talks to it over the SDK's gRPC plugin protocol (hashicorp
// go-plugin's handshake on stdout); it is not meant to be run by hand.
// It logs JSON lines to stderr in go-plugin's shape (@level, @message,
// @timestamp), which Grafana copies into its own log at their level.
package main

import (
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: goPluginAttr})).
		With("plugin", plugin.PluginID)
	if err := datasource.Manage(plugin.PluginID, plugin.NewFactory(log), datasource.ManageOpts{}); err != nil {
		log.Error("serving the plugin", "err", err)
		os.Exit(1)
	}
}

// goPluginAttr renames slog's built-in keys to those go-plugin reads from a
// plugin's stderr, so that Grafana logs each line at its level.
func goPluginAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		// go-plugin parses exactly hclog's layout; any other drops the
		// line to debug level.
		a.Key = "@timestamp"
		if t, ok := a.Value.Any().(time.Time); ok {
			a.Value = slog.StringValue(t.Format("2006-01-02T15:04:05.000000Z07:00"))
		}
	case slog.MessageKey:
		a.Key = "@message"
	case slog.LevelKey:
		a.Key = "@level"
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(strings.ToLower(l.String()))
		}
	}
	return a
}
