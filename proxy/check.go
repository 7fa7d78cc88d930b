package proxy

import (
	"crypto/tls"
	"net/http"
	"net/netip"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// FramingName is the check named in events for requests refused for
// ambiguous framing, before the chain runs.
const FramingName = "framing"

// Exchange is one request on its way through the check chain. Checks read
// it and may fill the event; it belongs to the request's goroutine.
type Exchange struct {
	Req      *http.Request
	API      string
	ClientIP netip.Addr
	Creds    Credentials
	Event    *event.RequestEvent
	Now      time.Time
	// Plan is the verified consumer's plan (API key), for rate limits.
	Plan string
	// TLS is the connection's TLS state when TLS terminates here.
	TLS *tls.ConnectionState
	// wire is the HTTP/1.x view of the request (header order, framing).
	wire Wire
	// fp is the client fingerprint (event.ClientFingerprint), which
	// enforcement entries of kind fp match.
	fp string
	// state is the configuration the request runs with.
	state *state
	// Token is the verified bearer token, when a check verified one
	// (proxy/auth: the proxy token check or authentication).
	Token *Token
	// ResponseHeaders are set on the upstream's answer (overriding what
	// the upstream sent), for checks that shape responses (CORS).
	ResponseHeaders http.Header

	// ev is the event the proxy builds (Event points here), ctx the
	// upstream leg's context, rec the response recorder and hv the values
	// of the headers the proxy sets: all in the exchange's one allocation.
	ev  event.RequestEvent
	ctx exchangeCtx
	rec recorder
	hv  [5]string
	nhv int
	// qp and qpp hold the event's first query parameters (Event.Query).
	qp  [4]event.QueryParam
	qpp [4]*event.QueryParam
}

// release drops the exchange's references once the request is done; its
// event lives on in the emitter.
func (x *Exchange) release() {
	x.Req, x.TLS, x.state, x.Token, x.ResponseHeaders = nil, nil, nil, nil, nil
	x.rec = recorder{} // x.ctx stays: a context derived from it may still be read
	x.hv = [len(x.hv)]string{}
}

// Identity returns the identities the enforcement state is keyed by.
func (x *Exchange) Identity() enforce.Identity {
	id := x.Creds.Identity(x.ClientIP)
	id.FP = x.fp
	return id
}

// Token is a verified bearer token's content (a JWT's claims), as the
// check that verified it leaves it for the checks after it.
type Token struct {
	Issuer  string
	Subject string
	ID      string
	Scopes  []string
	Claims  map[string]any
}

// Denial is a check's refusal. Status, Title and Headers go to the client;
// Reason goes only to the event, for analysts.
type Denial struct {
	Status   int
	Title    string
	Detail   string // safe for the client: never internal detail
	Decision event.Decision
	Auth     event.AuthOutcome // set when the denial is about credentials
	Reason   string
	Headers  http.Header
	// RawBody, when set, is sent as is (with RawType) instead of a problem
	// document: a decoy's answer must look like the upstream's.
	RawBody []byte
	RawType string
	// Answer marks a reply that is not a refusal (a CORS preflight the
	// proxy answers itself): it is not counted as denied.
	Answer bool
}

// Check is one layer of the chain. Check returns nil to let the request go
// on. Implementations must be safe for concurrent use and must not block on
// I/O: the proxy answers from memory.
type Check interface {
	Name() string
	Check(x *Exchange) *Denial
}
