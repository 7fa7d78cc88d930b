package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
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

// NATSAuth holds the credentials and TLS files a component presents to
// nats.url. A user and password, or a token, go in the URL itself
// (nats://user:password@host:4222, nats://token@host:4222), which prints
// redacted. The embedded server of 'apiguard up' takes none of them.
type NATSAuth struct {
	// CredsFile is a credentials file (a user JWT and its nkey seed), as
	// 'nsc generate creds' writes it.
	CredsFile string `yaml:"creds_file"`
	// NKeySeedFile holds a user nkey seed (SU…) for servers that list
	// users by nkey.
	NKeySeedFile string `yaml:"nkey_seed_file"`
	// TLS verifies the server and presents a client certificate.
	TLS NATSTLS `yaml:"tls"`
}

// NATSTLS configures TLS to NATS. Any file set turns TLS on (as a tls://
// URL does); without CAFile the system's roots verify the server.
type NATSTLS struct {
	// CAFile holds the PEM certificates of the CAs that sign the server's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client's certificate and key, PEM, for
	// a server that verifies its clients.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// over sets in dst the fields set in a (the flags over the config).
func (a NATSAuth) over(dst *NATSAuth) {
	for _, f := range []struct{ from, to *string }{{&a.CredsFile, &dst.CredsFile}, {&a.NKeySeedFile, &dst.NKeySeedFile},
		{&a.TLS.CAFile, &dst.TLS.CAFile}, {&a.TLS.CertFile, &dst.TLS.CertFile}, {&a.TLS.KeyFile, &dst.TLS.KeyFile}} {
		if *f.from != "" {
			*f.to = *f.from
		}
	}
}

// empty reports whether nothing is set.
func (a NATSAuth) empty() bool { return a == NATSAuth{} }

// Validate checks that the files exist and go together, and that there
// is a nats.url to present them to.
func (a NATSAuth) Validate(url secret.URL) error {
	if a.empty() {
		return nil
	}
	if url == "" {
		return fmt.Errorf("nats: creds_file, nkey_seed_file and tls are for nats.url, which is empty (the embedded server of 'apiguard up' takes no credentials)")
	}
	if a.CredsFile != "" && a.NKeySeedFile != "" {
		return fmt.Errorf("nats.creds_file and nats.nkey_seed_file: set one, not both")
	}
	if (a.TLS.CertFile == "") != (a.TLS.KeyFile == "") {
		return fmt.Errorf("nats.tls: cert_file and key_file go together")
	}
	for _, f := range []struct{ key, path string }{{"nats.creds_file", a.CredsFile}, {"nats.nkey_seed_file", a.NKeySeedFile},
		{"nats.tls.ca_file", a.TLS.CAFile}, {"nats.tls.cert_file", a.TLS.CertFile}, {"nats.tls.key_file", a.TLS.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
	}
	return nil
}

// options returns the client options that present a's credentials and
// TLS files.
func (a NATSAuth) options() ([]nats.Option, error) {
	var opts []nats.Option
	if a.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	}
	if a.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_seed_file %s: %w", a.NKeySeedFile, err)
		}
		opts = append(opts, o)
	}
	if a.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.TLS.CAFile))
	}
	if a.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(a.TLS.CertFile, a.TLS.KeyFile))
	}
	if a.TLS != (NATSTLS{}) {
		opts = append(opts, nats.Secure())
	}
	return opts, nil
}

// connect dials NATS for one component. reconnectBuf < 0 disables the
// client's reconnect buffer (the proxy spools instead). With background set,
// connect returns at once even if NATS cannot be reached, and the client
// keeps trying (the proxy serves meanwhile); otherwise it tries for about
// five seconds and fails. url may carry credentials: it is revealed to
// the NATS client only. auth's credentials and TLS files are presented
// to url.
func connect(ctx context.Context, url secret.URL, auth NATSAuth, name string, reconnectBuf int, background bool, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(background),
	}
	if reconnectBuf != 0 {
		opts = append(opts, nats.ReconnectBufSize(reconnectBuf))
	}
	return dial(ctx, url, auth, name, 20, opts, log)
}

// operatorDialTimeout bounds an operator command's one attempt to reach
// NATS: a command typed at a terminal says at once that nothing answers.
const operatorDialTimeout = time.Second

// connectOperator dials NATS once for a command typed by an operator,
// failing within operatorDialTimeout when no server answers, with what to
// do about it.
func connectOperator(ctx context.Context, url secret.URL, auth NATSAuth, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, js, err := dial(ctx, url, auth, name, 0, []nats.Option{nats.Timeout(operatorDialTimeout)}, log)
	if noServer(err) {
		return nil, nil, fmt.Errorf("no NATS server answers at %s: start one with 'apiguard up' (it runs NATS embedded on nats.listen), or point at yours with --nats URL (or nats.url in --config)", url)
	}
	return nc, js, err
}

// noServer reports whether err says that no server answered (refused,
// timed out, unknown host), rather than that one refused us.
func noServer(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.Is(err, nats.ErrNoServers) || (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns)
}

// dial connects, trying again every 250 ms for retries more times; a
// refusal of the credentials is not retried.
func dial(ctx context.Context, url secret.URL, auth NATSAuth, name string, retries int, extra []nats.Option, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	authOpts, err := auth.options()
	if err != nil {
		return nil, nil, err
	}
	opts := append([]nats.Option{
		nats.Name(name),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil when the connection is closed on purpose
				log.Warn("nats disconnected", "conn", name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "conn", name, "url", secret.URL(c.ConnectedUrl()))
		}),
	}, authOpts...)
	opts = append(opts, extra...)
	var nc *nats.Conn
	// Retry the first connection for a while: NATS may be starting too.
	for attempt := 0; ; attempt++ {
		nc, err = nats.Connect(url.Reveal(), opts...)
		if err == nil {
			break
		}
		if attempt >= retries || ctx.Err() != nil || errors.Is(err, nats.ErrAuthorization) {
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
