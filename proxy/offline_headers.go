package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// HeaderOrderFingerprint returns the header-order fingerprint the proxy
// records for an HTTP/1.x request whose header names, as sent (case
// kept), were names in that order (Wire.HeaderOrder): for requests the
// proxy did not read off the wire itself, such as raw HTTP requests
// imported from a file. TestHeaderOrderFingerprintOffline holds it to the
// framer's.
func HeaderOrderFingerprint(names []string) string {
	sum := sha256.Sum256([]byte(strings.Join(names, ",")))
	return "h1:" + hex.EncodeToString(sum[:8])
}
