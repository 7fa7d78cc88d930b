package proxy

import (
	"crypto/md5" //nolint:gosec // JA3 is defined as an MD5 digest; it names, it does not protect.
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// TLS extension numbers JA4 treats apart.
const (
	extServerName        = 0x0000
	extALPN              = 0x0010
	extSupportedVersions = 0x002b
)

// isGREASE reports RFC 8701 values (0x0a0a, 0x1a1a, … 0xfafa), which
// clients insert at random and every fingerprint ignores.
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

func dropGREASE(vs []uint16) []uint16 {
	out := make([]uint16, 0, len(vs))
	for _, v := range vs {
		if !isGREASE(v) {
			out = append(out, v)
		}
	}
	return out
}

// JA4 returns the JA4 fingerprint (FoxIO's JA4 TLS client fingerprint,
// BSD 3-Clause) of a ClientHello, e.g. "t13d1516h2_8daaf6152771_d8a2da3f94cd":
// protocol, highest version, SNI or not, cipher and extension counts, the
// first ALPN value's first and last characters; then the truncated SHA-256
// of the sorted cipher suites; then of the sorted extensions (without SNI
// and ALPN) and the signature algorithms in the order sent.
func JA4(h *tls.ClientHelloInfo) string {
	ciphers := dropGREASE(h.CipherSuites)
	exts := dropGREASE(h.Extensions)
	var b strings.Builder
	b.WriteByte('t')
	b.WriteString(ja4Version(h))
	if slices.Contains(exts, extServerName) {
		b.WriteByte('d')
	} else {
		b.WriteByte('i')
	}
	b.WriteString(twoDigits(len(ciphers)))
	b.WriteString(twoDigits(len(exts)))
	b.WriteString(ja4ALPN(h.SupportedProtos))
	b.WriteByte('_')

	slices.Sort(ciphers)
	b.WriteString(ja4Hash(hexList(ciphers)))
	b.WriteByte('_')

	sorted := make([]uint16, 0, len(exts))
	for _, e := range exts {
		if e != extServerName && e != extALPN {
			sorted = append(sorted, e)
		}
	}
	slices.Sort(sorted)
	sigs := make([]uint16, 0, len(h.SignatureSchemes))
	for _, s := range h.SignatureSchemes {
		if !isGREASE(uint16(s)) {
			sigs = append(sigs, uint16(s))
		}
	}
	c := hexList(sorted)
	if len(sigs) > 0 {
		c += "_" + hexList(sigs)
	}
	if len(sorted) == 0 {
		b.WriteString("000000000000")
	} else {
		b.WriteString(ja4Hash(c))
	}
	return b.String()
}

func ja4Version(h *tls.ClientHelloInfo) string {
	var best uint16
	for _, v := range h.SupportedVersions {
		if !isGREASE(v) && v > best {
			best = v
		}
	}
	switch best {
	case tls.VersionTLS13:
		return "13"
	case tls.VersionTLS12:
		return "12"
	case tls.VersionTLS11:
		return "11"
	case tls.VersionTLS10:
		return "10"
	case 0x0300:
		return "s3"
	}
	return "00"
}

func ja4ALPN(protos []string) string {
	if len(protos) == 0 || protos[0] == "" {
		return "00"
	}
	p := protos[0]
	first, last := p[0], p[len(p)-1]
	if isAlnum(first) && isAlnum(last) {
		return string([]byte{first, last})
	}
	// Non-alphanumeric values: the first and last hex digits of the value.
	hx := hex.EncodeToString([]byte(p))
	return string([]byte{hx[0], hx[len(hx)-1]})
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func twoDigits(n int) string {
	n = min(n, 99)
	return string([]byte{byte('0' + n/10), byte('0' + n%10)})
}

func hexList(vs []uint16) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		const digits = "0123456789abcdef"
		b.Write([]byte{digits[v>>12], digits[v>>8&0xf], digits[v>>4&0xf], digits[v&0xf]})
	}
	return b.String()
}

func ja4Hash(s string) string {
	if s == "" {
		return "000000000000"
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// JA3 returns the JA3 string and its MD5 (Salesforce's JA3, BSD 3-Clause)
// of a ClientHello: version, ciphers, extensions, curves and point
// formats, in the order sent, without GREASE. crypto/tls does not expose the
// legacy version field; a client that sends supported_versions has it at
// 771 (TLS 1.2) by RFC 8446, and for the others it is the highest version
// offered, which is what crypto/tls derives SupportedVersions from.
func JA3(h *tls.ClientHelloInfo) (text, hash string) {
	exts := dropGREASE(h.Extensions)
	version := uint16(0)
	if slices.Contains(exts, extSupportedVersions) {
		version = tls.VersionTLS12
	} else {
		for _, v := range h.SupportedVersions {
			if !isGREASE(v) {
				version = max(version, v)
			}
		}
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(int(version)))
	b.WriteByte(',')
	decList(&b, dropGREASE(h.CipherSuites))
	b.WriteByte(',')
	decList(&b, exts)
	b.WriteByte(',')
	curves := make([]uint16, 0, len(h.SupportedCurves))
	for _, c := range h.SupportedCurves {
		if !isGREASE(uint16(c)) {
			curves = append(curves, uint16(c))
		}
	}
	decList(&b, curves)
	b.WriteByte(',')
	for i, p := range h.SupportedPoints {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strconv.Itoa(int(p)))
	}
	text = b.String()
	sum := md5.Sum([]byte(text)) //nolint:gosec // see import
	return text, hex.EncodeToString(sum[:])
}

func decList(b *strings.Builder, vs []uint16) {
	for i, v := range vs {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strconv.Itoa(int(v)))
	}
}
