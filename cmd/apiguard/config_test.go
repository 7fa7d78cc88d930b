package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"empty file", "", ""},
		{"valid", "nats:\n  partitions: 8\nproxy:\n  routes: [\"GET /a/{id}\"]\n", ""},
		{"unknown key names key and line", "proxy:\n  listen: 127.0.0.1:1\n  colour: red\n", "line 3: field colour not found"},
		{"bad duration", "detectors:\n  stolen_token:\n    overlap: soon\n", "line 3"},
		{"invalid value names key", "detectors:\n  volumetric:\n    threshold: -1\n", "detectors.volumetric.threshold"},
		{"unknown detector disabled", "detectors:\n  disable: [rate]\n", "detectors.disable[0]"},
		{"missing inventory", "detectors:\n  inventory:\n    openapi: nowhere.yaml\n", "detectors.inventory.openapi"},
		{"bad partitions", "nats:\n  partitions: 0\n", "nats.partitions"},
		{"owned out of range", "nats:\n  partitions: 2\n  owned_partitions: [5]\n", "nats.owned_partitions[0]"},
		{"bad route", "proxy:\n  routes: [\"orders\"]\n", "proxy.routes[0]"},
		{"bad log level", "log:\n  level: loud\n", "log.level"},
		{"bad never_block", "responder:\n  never_block: [\"x\"]\n", "responder.never_block[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := newCommon("test").load([]string{"--config", path}, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("load = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestFlagsOverrideFileAndEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("nats:\n  url: nats://file:4222\nlog:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("APIGUARD_NATS_URL", "nats://env:4222")
	cfg, err := newCommon("test").load([]string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.URL != "nats://env:4222" || cfg.Log.Level != "debug" {
		t.Errorf("env over file: url %q level %q", cfg.NATS.URL, cfg.Log.Level)
	}
	cfg, err = newCommon("test").load([]string{"--config", path, "--nats", "nats://flag:4222", "--log-level", "warn"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.URL != "nats://flag:4222" || cfg.Log.Level != "warn" {
		t.Errorf("flags over env: url %q level %q", cfg.NATS.URL, cfg.Log.Level)
	}
}

func TestRunRejectsBadUsage(t *testing.T) {
	for _, args := range [][]string{{"nonsense"}, {"block", "--nats", "nats://127.0.0.1:1", "email", "x"}, {"block", "key"}, {"proxy", "--bogus-flag"}} {
		err := run(t.Context(), args[0], args[1:], os.Stdout)
		if err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("run(%v) = %v, want a usage error", args, err)
		}
	}
}

func TestPercentileMs(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want float64
	}{
		{nil, 50, 0},
		{ms(7), 99, 7},
		{ms(5, 1, 3, 2, 4), 50, 3},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 100), 99, 100},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 100), 50, 5},
	}
	for _, tt := range tests {
		if got := percentileMs(tt.in, tt.p); got != tt.want {
			t.Errorf("percentileMs(%v, %g) = %g, want %g", tt.in, tt.p, got, tt.want)
		}
	}
}
