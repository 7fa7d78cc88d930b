package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/apiguard/apiguard/proxy"
	"github.com/apiguard/apiguard/proxy/emit"
	"github.com/apiguard/apiguard/sinks/alerts"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// Config is the whole configuration of every subcommand. It is layered:
// DefaultConfig, then the YAML file (strict: an unknown key is an error
// naming it and its line), then environment variables, then flags.
type Config struct {
	NATS       NATSConfig        `yaml:"nats"`
	Proxy      proxy.Config      `yaml:"proxy"`
	Emit       emit.Config       `yaml:"emit"`
	Detectors  detectors.Config  `yaml:"detectors"`
	Responder  responder.Config  `yaml:"responder"`
	ClickHouse ClickHouseConfig  `yaml:"clickhouse"`
	Alerts     alerts.Config     `yaml:"alerts"`
	Metrics    MetricsConfig     `yaml:"metrics"`
	Admin      proxy.AdminConfig `yaml:"admin"`
	Log        LogConfig         `yaml:"log"`
}

// NATSConfig says where NATS is, or how to run it embedded.
type NATSConfig struct {
	// URL of the NATS servers; empty runs an embedded server (up only).
	// It may carry credentials (nats://user:password@host:4222), so it
	// prints redacted.
	URL secret.URL `yaml:"url"`
	// Auth holds the credentials and TLS files for nats.url (user and
	// password, or a token, go in the URL itself).
	Auth NATSAuth `yaml:",inline"`
	// Listen and StoreDir configure the embedded server.
	Listen   string `yaml:"listen"`
	StoreDir string `yaml:"store_dir"`
	// Owned lists the partitions this pipeline replica consumes; empty for all.
	Owned           []int `yaml:"owned_partitions"`
	topology.Config `yaml:",inline"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// DefaultConfig returns the defaults: everything on this host, embedded NATS.
func DefaultConfig() Config {
	topo := topology.DefaultConfig()
	topo.Partitions = 4
	return Config{
		NATS:       NATSConfig{Listen: "127.0.0.1:4222", StoreDir: "var/nats", Config: topo},
		Proxy:      proxy.DefaultConfig(),
		Emit:       emit.DefaultConfig(),
		Detectors:  detectors.DefaultConfig(),
		Responder:  responder.DefaultConfig(),
		ClickHouse: ClickHouseConfig{Config: clickhouse.DefaultConfig()},
		Alerts:     alerts.DefaultConfig(),
		Log:        LogConfig{Level: "info", Format: "text"},
		// Off unless asked for (up turns it on): several proxies often
		// share a host.
		Admin: proxy.AdminConfig{TokenEnv: "APIGUARD_ADMIN_TOKEN"},
	}
}

// Validate checks every section and names the first bad key.
func (c Config) Validate() error {
	if err := c.NATS.Config.Validate(); err != nil {
		return err
	}
	for i, p := range c.NATS.Owned {
		if p < 0 || p >= c.NATS.Partitions {
			return fmt.Errorf("nats.owned_partitions[%d]: %d, want 0..%d", i, p, c.NATS.Partitions-1)
		}
	}
	if u := c.NATS.URL.Reveal(); u != "" && !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
		return fmt.Errorf("nats.url: %q, want nats://host:port", c.NATS.URL)
	}
	if err := c.NATS.Auth.Validate(c.NATS.URL); err != nil {
		return err
	}
	if err := c.Proxy.Validate(); err != nil {
		return err
	}
	if err := c.Emit.Validate(); err != nil {
		return err
	}
	if err := c.Detectors.Validate(); err != nil {
		return err
	}
	if err := c.Responder.Validate(); err != nil {
		return err
	}
	if err := c.ClickHouse.Validate(); err != nil {
		return err
	}
	if err := c.Alerts.Validate(); err != nil {
		return err
	}
	if err := c.Admin.Validate(os.Getenv(c.Admin.TokenEnv)); err != nil {
		return err
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			return fmt.Errorf("metrics.listen: %q: %w", c.Metrics.Listen, err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q, want debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("log.format: %q, want text or json", c.Log.Format)
	}
	return nil
}

// loadFile decodes a YAML file over cfg, refusing unknown keys.
func loadFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file is an empty config: yaml reports it as io.EOF.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return loadInventory(&cfg.Detectors.Inventory)
}

// loadInventory reads the OpenAPI document the inventory detector names
// (a relative path is from the working directory, like every other file
// the config names).
func loadInventory(c *detectors.InventoryConfig) error {
	if c.OpenAPI == "" {
		return nil
	}
	path := c.OpenAPI
	doc, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("detectors.inventory.openapi: %w", err)
	}
	if c.Ops, err = detectors.ParseOpenAPI(doc); err != nil {
		return fmt.Errorf("detectors.inventory.openapi: %s: %w", path, err)
	}
	return nil
}

// applyEnv applies the environment variables that override the file.
func applyEnv(cfg *Config) {
	if v := os.Getenv("APIGUARD_NATS_URL"); v != "" {
		cfg.NATS.URL = secret.URL(v)
	}
	if v := os.Getenv("APIGUARD_CLICKHOUSE_ADDR"); v != "" {
		cfg.ClickHouse.set(v)
	}
	if v := os.Getenv("APIGUARD_CLICKHOUSE_DSN"); v != "" {
		cfg.ClickHouse.DSN = secret.URL(v)
	}
	if v := os.Getenv("APIGUARD_CLICKHOUSE_PASSWORD"); v != "" {
		cfg.ClickHouse.Password = secret.String(v)
	}
	if v := os.Getenv("APIGUARD_LOG_LEVEL"); v != "" {
		cfg.Log.Level = v
	}
}
