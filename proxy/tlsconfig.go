package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSConfig turns on TLS termination at the proxy. With it the proxy
// fingerprints each ClientHello (JA4 and JA3) and can require client
// certificates (mTLS), whose subject becomes the request's principal.
type TLSConfig struct {
	// CertFile and KeyFile are the PEM server certificate (chain) and key;
	// TLS is off when CertFile is empty.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile is the PEM bundle client certificates must chain to.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is "none", "optional" (verified when sent) or "require".
	ClientAuth string `yaml:"client_auth"`
	// MinVersion is "1.2" or "1.3".
	MinVersion string `yaml:"min_version"`
}

// DefaultTLSConfig is TLS off, TLS 1.2 at least when on.
func DefaultTLSConfig() TLSConfig { return TLSConfig{ClientAuth: "none", MinVersion: "1.2"} }

// Enabled reports whether TLS terminates at the proxy.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" }

// Validate reports the first bad field by its config key. It does not read
// the files; Load does.
func (c TLSConfig) Validate() error {
	switch {
	case c.MinVersion != "1.2" && c.MinVersion != "1.3":
		return fmt.Errorf("proxy.tls.min_version: %q, want 1.2 or 1.3", c.MinVersion)
	case c.ClientAuth != "none" && c.ClientAuth != "optional" && c.ClientAuth != "require":
		return fmt.Errorf("proxy.tls.client_auth: %q, want none, optional or require", c.ClientAuth)
	case c.CertFile != "" && c.KeyFile == "":
		return fmt.Errorf("proxy.tls.key_file: required with proxy.tls.cert_file")
	case c.CertFile == "" && (c.KeyFile != "" || c.ClientCAFile != "" || c.ClientAuth != "none"):
		return fmt.Errorf("proxy.tls: key_file, client_ca_file and client_auth need proxy.tls.cert_file")
	case c.ClientAuth != "none" && c.ClientCAFile == "":
		return fmt.Errorf("proxy.tls.client_auth: %q needs proxy.tls.client_ca_file", c.ClientAuth)
	}
	return nil
}

// Load reads the certificate, key and client CAs and returns the server
// side tls.Config (ALPN h2 and http/1.1 when http2 is true), or nil when
// TLS is off.
func (c TLSConfig) Load(http2 bool) (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("proxy.tls: loading %s and %s: %w", c.CertFile, c.KeyFile, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.MinVersion == "1.3" {
		tc.MinVersion = tls.VersionTLS13
	}
	tc.NextProtos = []string{"http/1.1"}
	if http2 {
		tc.NextProtos = []string{"h2", "http/1.1"}
	}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("proxy.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("proxy.tls.client_ca_file: %s holds no PEM certificate", c.ClientCAFile)
		}
		tc.ClientCAs = pool
	}
	switch c.ClientAuth {
	case "optional":
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// certIdentity names the verified client certificate of a connection:
// "cert:" and its first URI SAN, else its first DNS SAN, else its subject
// common name. It is "" without a verified certificate.
func certIdentity(st *tls.ConnectionState) string {
	if st == nil || len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	c := st.PeerCertificates[0]
	switch {
	case len(c.URIs) > 0:
		return clip("cert:"+c.URIs[0].String(), 256)
	case len(c.DNSNames) > 0:
		return clip("cert:"+c.DNSNames[0], 256)
	case c.Subject.CommonName != "":
		return clip("cert:"+c.Subject.CommonName, 256)
	}
	return ""
}
