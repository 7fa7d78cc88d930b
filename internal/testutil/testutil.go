// Package testutil provides what apiguard's tests share: an embedded
// JetStream server on a random loopback port, Eventually, which replaces
// sleeps, and readers of the streams (AuditActions). It is imported by
// tests only.
package testutil

import (
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/pipeline/topology"
)

// JetStream starts a NATS server with JetStream on 127.0.0.1. Port -1 picks
// a free port (use FreePort instead for a server the test restarts on the
// same port); storeDir "" uses a fresh t.TempDir(). The server is shut down
// when the test ends.
func JetStream(t testing.TB, port int, storeDir string) *server.Server {
	t.Helper()
	if storeDir == "" {
		storeDir = t.TempDir()
	}
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  storeDir,
		NoLog:     true,
		NoSigs:    true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("starting NATS: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("NATS did not become ready in 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect returns a connection and JetStream context for s, closed when the test ends.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connecting to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Eventually polls f every 10ms until it returns true, failing the test
// with msg if it has not within timeout. Arguments of type func() any are
// called when the message is formatted, so it shows the state at failure
// rather than at the call.
func Eventually(t testing.TB, timeout time.Duration, f func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if f() {
			return
		}
		if time.Now().After(deadline) {
			vals := []any{timeout}
			for _, a := range args {
				if g, ok := a.(func() any); ok {
					a = g()
				}
				vals = append(vals, a)
			}
			t.Fatalf("after %s: "+msg, vals...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Topology starts a JetStream server, connects to it and declares apiguard's
// streams and enforcement bucket with the default configuration.
func Topology(t testing.TB) (jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	_, js := Connect(t, JetStream(t, -1, ""))
	bucket, err := topology.Ensure(context.Background(), js, topology.DefaultConfig())
	if err != nil {
		t.Fatalf("declaring topology: %v", err)
	}
	return js, bucket
}

// FreePort returns a loopback TCP port that is free now and lies below the
// kernel's ephemeral range (32768 and up on Linux), so that servers other
// tests start on port 0 cannot take it while a test holds it unbound (as
// when it restarts a server on the same port).
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}
