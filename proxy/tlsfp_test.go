package proxy

import (
	"crypto/tls"
	"testing"
)

// chromeHello is a Chrome 143 ClientHello as a public fingerprinting
// service reported it, with its JA4, JA3 text and JA3 hash: an independent
// reference for both algorithms.
func chromeHello() *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		CipherSuites: []uint16{0x1a1a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
			0x009c, 0x009d, 0x002f, 0x0035},
		Extensions: []uint16{0x2a2a, 0x002d, 0x0033, 0x0010, 0xfe0d, 0x0017, 0x44cd, 0x0000, 0x000b, 0x000a, 0x002b, 0xff01,
			0x0023, 0x0012, 0x0005, 0x000d, 0x001b, 0x3a3a},
		SignatureSchemes:  []tls.SignatureScheme{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601},
		SupportedProtos:   []string{"h2", "http/1.1"},
		SupportedVersions: []uint16{0x7a7a, tls.VersionTLS13, tls.VersionTLS12},
		SupportedCurves:   []tls.CurveID{0x9a9a, 4588, 29, 23, 24},
		SupportedPoints:   []uint8{0},
		ServerName:        "tls.browserleaks.com",
	}
}

func TestJA4(t *testing.T) {
	h := chromeHello()
	if got, want := JA4(h), "t13d1516h2_8daaf6152771_d8a2da3f94cd"; got != want {
		t.Errorf("JA4 = %s, want %s", got, want)
	}
	// No SNI, no ALPN, TLS 1.2 only.
	h.Extensions = []uint16{0x000a, 0x000b, 0x000d}
	h.SupportedProtos = nil
	h.SupportedVersions = []uint16{tls.VersionTLS12}
	h.CipherSuites = []uint16{0xc02f}
	if got := JA4(h)[:10]; got != "t12i010300" {
		t.Errorf("JA4 prefix = %s, want t12i010300", got)
	}
	if got := ja4ALPN([]string{"\x01abc\x02"}); got != "02" {
		t.Errorf("non-alphanumeric ALPN = %s, want 02 (first and last hex digit)", got)
	}
}

func TestJA3(t *testing.T) {
	text, hash := JA3(chromeHello())
	const wantText = "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53," +
		"45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0"
	if text != wantText {
		t.Errorf("JA3 text\n got %s\nwant %s", text, wantText)
	}
	if hash != "98487aa16281980e7d1120d399efb6a4" {
		t.Errorf("JA3 hash = %s", hash)
	}
}

func TestGREASE(t *testing.T) {
	for _, v := range []uint16{0x0a0a, 0x1a1a, 0x7a7a, 0xfafa} {
		if !isGREASE(v) {
			t.Errorf("%#04x is GREASE", v)
		}
	}
	for _, v := range []uint16{0x0a1a, 0x1301, 0x0a0b, 0x000a} {
		if isGREASE(v) {
			t.Errorf("%#04x is not GREASE", v)
		}
	}
}
