package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/internal/secret"
)

// startEmbedded runs a NATS server with JetStream in this process, storing
// under cfg.StoreDir. The caller shuts it down.
func startEmbedded(cfg NATSConfig) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats.listen: %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats.listen: %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "apiguard-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring embedded NATS: %w", err)
	}
	go s.Start() // Start returns once listening; WaitForShutdown is the owner's
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start on %s (is the port in use? set nats.listen)", cfg.Listen)
	}
	return s, nil
}

// connect dials NATS for one component. reconnectBuf < 0 disables the
// client's reconnect buffer (the proxy spools instead). With background set,
// connect returns at once even if NATS cannot be reached, and the client
// keeps trying (the proxy serves meanwhile); otherwise it tries for about
// five seconds and fails. url may carry credentials: it is revealed to
// the NATS client only.
func connect(ctx context.Context, url secret.URL, name string, reconnectBuf int, background bool, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(background),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil when the connection is closed on purpose
				log.Warn("nats disconnected", "conn", name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "conn", name, "url", secret.URL(c.ConnectedUrl()))
		}),
	}
	if reconnectBuf != 0 {
		opts = append(opts, nats.ReconnectBufSize(reconnectBuf))
	}
	var nc *nats.Conn
	var err error
	// Retry the first connection for a while: NATS may be starting too.
	for attempt := 0; ; attempt++ {
		nc, err = nats.Connect(url.Reveal(), opts...)
		if err == nil {
			break
		}
		if attempt == 20 || ctx.Err() != nil {
			return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", url, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("opening JetStream: %w", err)
	}
	return nc, js, nil
}
