package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	otherCA                                              string // a CA that signed none of them
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		key := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		return cert, key, der
	}
	ca, caKey, caDER := newCA("apiguard test CA")
	_, _, otherDER := newCA("another CA")
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) (certFile, keyFile string) {
		key := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kder)
	}
	p := testPKI{caFile: write("ca.crt", "CERTIFICATE", caDER), otherCA: write("other-ca.crt", "CERTIFICATE", otherDER)}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth, nil)
	return p
}

// startSecuredNATS starts a JetStream server with opts' security
// settings on a random loopback port.
func startSecuredNATS(t *testing.T, opts server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, t.TempDir(), true, true
	s, err := server.NewServer(&opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// writeFile writes content to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNATSCredentialsAndTLS runs the operator commands against real
// NATS servers that require each kind of credential, and TLS with a
// client certificate: with the right flags (or config keys) they work,
// without them they are refused, and no secret is printed.
func TestNATSCredentialsAndTLS(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()

	// nkey user.
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	seedFile := writeFile(t, dir, "user.nk", string(useed))

	// Operator mode: an operator signs an account with JetStream, which
	// signs a user whose JWT and seed make the credentials file.
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accountJWT, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	// JetStream in operator mode needs a system account.
	skp, _ := nkeys.CreateAccount()
	spub, _ := skp.PublicKey()
	systemJWT, err := jwt.NewAccountClaims(spub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	for pub, claim := range map[string]string{apub: accountJWT, spub: systemJWT} {
		if err := resolver.Store(pub, claim); err != nil {
			t.Fatal(err)
		}
	}
	ckp, _ := nkeys.CreateUser()
	cpub, _ := ckp.PublicKey()
	cseed, _ := ckp.Seed()
	userJWT, err := jwt.NewUserClaims(cpub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, cseed)
	if err != nil {
		t.Fatal(err)
	}
	credsFile := writeFile(t, dir, "user.creds", string(creds))

	tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.caFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	const password, token = "s3nt1nel-nats-password", "s3nt1nel-nats-token"

	for _, tc := range []struct {
		name   string
		opts   server.Options
		url    func(addr string) string
		flags  []string // what the server requires
		config string   // the same as config keys, %s for the address
	}{
		{name: "user and password in the URL", opts: server.Options{Username: "apiguard", Password: password},
			url: func(a string) string { return "nats://apiguard:" + password + "@" + a }},
		{name: "token in the URL", opts: server.Options{Authorization: token},
			url: func(a string) string { return "nats://" + token + "@" + a }},
		{name: "nkey seed", opts: server.Options{Nkeys: []*server.NkeyUser{{Nkey: upub}}},
			flags:  []string{"--nats-nkey", seedFile},
			config: "nats:\n  url: nats://%s\n  nkey_seed_file: " + seedFile + "\n"},
		{name: "credentials file", opts: server.Options{TrustedKeys: []string{opub}, SystemAccount: spub, AccountResolver: resolver},
			flags:  []string{"--nats-creds", credsFile},
			config: "nats:\n  url: nats://%s\n  creds_file: " + credsFile + "\n"},
		{name: "TLS with a client certificate", opts: server.Options{TLS: true, TLSVerify: true, TLSConfig: tlsConfig},
			url:    func(a string) string { return "tls://" + a },
			flags:  []string{"--nats-ca", pki.caFile, "--nats-cert", pki.clientCert, "--nats-key", pki.clientKey},
			config: "nats:\n  url: tls://%s\n  tls:\n    ca_file: " + pki.caFile + "\n    cert_file: " + pki.clientCert + "\n    key_file: " + pki.clientKey + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSecuredNATS(t, tc.opts)
			addr := s.Addr().String()
			url := "nats://" + addr
			if tc.url != nil {
				url = tc.url(addr)
			}
			ctx := context.Background()
			// Declare the topology as the pipeline would, with the same
			// credentials.
			var auth NATSAuth
			cfg, err := newCommon("test").load(append([]string{"--nats", url}, tc.flags...), nil)
			if err != nil {
				t.Fatal(err)
			}
			auth = cfg.NATS.Auth
			nc, js, err := connect(ctx, secret.URL(url), auth, "test", 0, false, newLogger(cfg.Log, io.Discard))
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer nc.Close()
			if _, err := topology.Ensure(ctx, js, cfg.NATS.Config); err != nil {
				t.Fatal(err)
			}

			// The operator commands, flags after the arguments.
			var out bytes.Buffer
			args := append([]string{"ip", "192.0.2.7", "--ttl", "1h", "--nats", url}, tc.flags...)
			if err := run(ctx, "block", args, &out); err != nil {
				t.Fatalf("block: %v", err)
			}
			out.Reset()
			if err := run(ctx, "blocks", append([]string{"--json", "--nats", url}, tc.flags...), &out); err != nil {
				t.Fatalf("blocks: %v", err)
			}
			if !strings.Contains(out.String(), `"value": "192.0.2.7"`) {
				t.Errorf("blocks --json:\n%s", out.String())
			}
			// The same from the config file's keys.
			if tc.config != "" {
				path := writeFile(t, t.TempDir(), "c.yaml", fmt.Sprintf(tc.config, addr))
				out.Reset()
				if err := run(ctx, "blocks", []string{"--config", path}, &out); err != nil {
					t.Fatalf("blocks with the config keys: %v", err)
				}
				if !strings.Contains(out.String(), "192.0.2.7") {
					t.Errorf("blocks:\n%s", out.String())
				}
			}
			// Without the credentials the server refuses, and says so
			// (not "start one"); nothing secret is in the error.
			bare := "nats://" + addr
			if strings.HasPrefix(url, "tls://") {
				bare = url
			}
			err = run(ctx, "blocks", []string{"--nats", bare}, io.Discard)
			if err == nil {
				t.Fatal("blocks without credentials succeeded")
			}
			if strings.Contains(err.Error(), "apiguard up") {
				t.Errorf("a refusal reads as an absent server: %v", err)
			}
			for _, s := range []string{password, token, string(useed), string(cseed)} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}

	t.Run("TLS signed by another CA is refused", func(t *testing.T) {
		s := startSecuredNATS(t, server.Options{TLS: true, TLSVerify: true, TLSConfig: tlsConfig})
		err := run(context.Background(), "blocks", []string{"--nats", "tls://" + s.Addr().String(), "--nats-ca", pki.otherCA,
			"--nats-cert", pki.clientCert, "--nats-key", pki.clientKey}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("blocks trusting another CA: %v, want a certificate error", err)
		}
	})
}

// TestNATSAuthValidate checks the config's refusals: each names its key.
func TestNATSAuthValidate(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "f", "x")
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"ok", []string{"--nats", "nats://h:4222", "--nats-creds", f}, ""},
		{"no url", []string{"--nats-creds", f}, "nats.url, which is empty"},
		{"creds and nkey", []string{"--nats", "nats://h:4222", "--nats-creds", f, "--nats-nkey", f}, "set one, not both"},
		{"cert without key", []string{"--nats", "nats://h:4222", "--nats-cert", f}, "cert_file and key_file go together"},
		{"missing file", []string{"--nats", "nats://h:4222", "--nats-ca", filepath.Join(dir, "nowhere")}, "nats.tls.ca_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newCommon("test").load(tc.args, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("%v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
