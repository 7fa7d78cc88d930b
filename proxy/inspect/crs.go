package inspect

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// CRSName is the name of the OWASP CRS check in events.
const CRSName = "crs"

var _ proxy.Check = (*CRS)(nil)

// CRS evaluates requests on its routes with the OWASP CRS: headers, then
// the body that inspection has already read within its limit. The CRS
// scores anomalies; at the threshold the request is refused (or flagged),
// and the reason lists the rules that matched.
type CRS struct {
	cfg proxy.CRSConfig
	waf coraza.WAF
}

// NewCRS compiles the rule set; nil when no route asks for it. Compiling
// takes about a second and is done once per configuration.
func NewCRS(cfg proxy.CRSConfig) (*CRS, error) {
	if len(cfg.Routes) == 0 {
		return nil, nil
	}
	directives := fmt.Sprintf(`Include @coraza.conf-recommended
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess Off
SecAuditEngine Off
Include @crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d"
SecAction "id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=%d"
Include @owasp_crs/*.conf
%s`, cfg.ParanoiaLevel, cfg.AnomalyThreshold, cfg.Directives)
	waf, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(directives))
	if err != nil {
		return nil, fmt.Errorf("proxy.crs: compiling the rule set: %w", err)
	}
	return &CRS{cfg: cfg, waf: waf}, nil
}

// Name implements proxy.Check.
func (*CRS) Name() string { return CRSName }

// Check implements proxy.Check.
func (c *CRS) Check(x *proxy.Exchange) *proxy.Denial {
	if !slices.Contains(c.cfg.Routes, x.API) {
		return nil
	}
	r := x.Req
	tx := c.waf.NewTransaction()
	defer func() {
		tx.ProcessLogging()
		_ = tx.Close()
	}()
	host, port, _ := net.SplitHostPort(r.RemoteAddr)
	p, _ := strconv.Atoi(port)
	tx.ProcessConnection(x.ClientIP.String(), p, host, 0)
	tx.ProcessURI(r.URL.RequestURI(), r.Method, r.Proto)
	for k, vs := range r.Header {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	// net/http keeps these out of Header; the CRS checks them.
	if r.Host != "" {
		tx.AddRequestHeader("Host", r.Host)
		tx.SetServerName(r.Host)
	}
	if r.ContentLength >= 0 && (r.ContentLength > 0 || r.Body != nil && r.Body != http.NoBody) {
		tx.AddRequestHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	for _, te := range r.TransferEncoding {
		tx.AddRequestHeader("Transfer-Encoding", te)
	}
	it := tx.ProcessRequestHeaders()
	if it == nil && r.Body != nil && r.Body != http.NoBody {
		// Inspection has bounded and buffered the body: read it, hand the
		// same bytes on.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return deny(http.StatusBadRequest, "The request body could not be read.", "crs: reading body: "+err.Error())
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if it, _, err = tx.WriteRequestBody(body); err != nil {
			return deny(http.StatusBadRequest, "The request body could not be read.", "crs: "+err.Error())
		}
	}
	if it == nil {
		// Phase 2 runs for every request, body or not: the CRS decides on
		// the anomaly score there.
		var err error
		if it, err = tx.ProcessRequestBody(); err != nil {
			return deny(http.StatusBadRequest, "The request body could not be read.", "crs: "+err.Error())
		}
	}
	if it == nil {
		return nil
	}
	why := crsReason(it, tx.MatchedRules())
	if c.cfg.Mode == "flag" {
		x.Event.Check, x.Event.Reason = CRSName, "flagged: "+why
		return nil
	}
	return &proxy.Denial{Status: http.StatusForbidden, Decision: event.Decision_DECISION_BLOCK, Reason: why}
}

// crsReason names the rules that scored, without the blocking rule
// itself, e.g. "crs 942100 SQL Injection Attack Detected via libinjection".
func crsReason(it *types.Interruption, matched []types.MatchedRule) string {
	var b strings.Builder
	b.WriteString("crs")
	n := 0
	for _, m := range matched {
		id := m.Rule().ID()
		// Attack rules only: 9000xx–9099xx set the CRS up, 949xxx and
		// above evaluate and log the scores.
		if m.Message() == "" || id == it.RuleID || id < 910000 || id >= 949000 {
			continue
		}
		if n > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %d %s", id, m.Message())
		n++
	}
	if n == 0 {
		fmt.Fprintf(&b, " rule %d", it.RuleID)
	}
	return clip(b.String(), 256)
}
