package enforce

import "net/netip"

// Identity is what the proxy knows of a request's client, as the Matcher
// needs it. Empty fields are not consulted.
type Identity struct {
	IP        netip.Addr
	KeyID     string // API key id
	TokenID   string // JWT jti
	TokenHash string // hash of the bearer token
	Subject   string // JWT sub
	FP        string // client fingerprint
}
