package inspect

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	libinjection "github.com/corazawaf/libinjection-go"

	"github.com/apiguard/apiguard/proxy"
)

// InspectionName is the name of the payload inspection check in events.
const InspectionName = "inspection"

// AccountHash is how an account name is recorded in events: "acct:" and
// 16 hex digits of its SHA-256. It is pseudonymous, not anonymous: whoever
// has a list of candidate names can test them.
func AccountHash(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "acct:" + hex.EncodeToString(sum[:8])
}

// Inspection checks what a request carries: header count, body size, JSON
// structure, XML without DTDs or entities, and SQL injection and XSS in
// path segments, query values, form values and JSON strings. It reads the
// body (at most the limit, and no further than the first violation) and
// hands the upstream the same bytes.
type Inspection struct {
	cfg proxy.InspectConfig
}

// NewInspection returns the check; cfg must be valid.
func NewInspection(cfg proxy.InspectConfig) *Inspection { return &Inspection{cfg: cfg} }

// Name implements proxy.Check.
func (*Inspection) Name() string { return InspectionName }

// MaxBody is the body limit of api's route: what authentication reads at
// most to verify a request signature.
func (c *Inspection) MaxBody(api string) int64 {
	n, _, _ := c.route(api)
	return n
}

func (c *Inspection) route(api string) (maxBody int64, injection, account string) {
	maxBody, injection = c.cfg.MaxBodyBytes, c.cfg.Injection
	if o, ok := c.cfg.Routes[api]; ok {
		account = o.Account
		if o.MaxBodyBytes > 0 {
			maxBody = o.MaxBodyBytes
		}
		if o.Injection != "" {
			injection = o.Injection
		}
	}
	return maxBody, injection, account
}

// Check implements proxy.Check.
func (c *Inspection) Check(x *proxy.Exchange) *proxy.Denial {
	r := x.Req
	maxBody, injection, account := c.route(x.API)
	n := 0
	for _, vs := range r.Header {
		n += len(vs)
	}
	if n > c.cfg.MaxHeaders {
		return deny(http.StatusRequestHeaderFieldsTooLarge, "Too many header fields.",
			fmt.Sprintf("%d header fields, limit %d", n, c.cfg.MaxHeaders))
	}
	if r.ContentLength > maxBody {
		return deny(http.StatusRequestEntityTooLarge, "The request body is too large.",
			fmt.Sprintf("Content-Length %d, limit %d", r.ContentLength, maxBody))
	}
	if raw := r.URL.RawQuery; raw != "" && c.cfg.Routes[x.API].StrictQuery {
		if err := proxy.StrictQuery(raw); err != nil {
			return deny(http.StatusBadRequest, err.(*proxy.QueryError).Detail(), err.Error()+" (strict_query)")
		}
	}
	var found *finding
	look := func(where, name, v string) bool {
		if found == nil && injection != proxy.InjectionOff {
			if found = detect(where, v); found != nil && name != "" {
				found.where += " " + clip(name, 64)
			}
		}
		return found == nil
	}
	for rest := r.URL.Path; rest != "" && found == nil; {
		var seg string
		seg, rest, _ = strings.Cut(rest, "/")
		look("path", "", seg)
	}
	if raw := r.URL.RawQuery; raw != "" {
		if found == nil && injection != proxy.InjectionOff {
			proxy.InspectQuery(raw, look)
		}
		if account != "" {
			if v, ok := proxy.QueryValue(raw, account); ok && v != "" {
				x.Event.Account = AccountHash(v)
			}
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		// The body's look is its own closure, so a request without a
		// body allocates none (the scanners' callbacks escape).
		d, inBody := c.body(x, maxBody, account, found != nil, injection != proxy.InjectionOff)
		if d != nil {
			return d
		}
		if found == nil {
			found = inBody
		}
	}
	if found == nil {
		return nil
	}
	reason := fmt.Sprintf("%s in %s", found.kind, found.where)
	if found.fingerprint != "" {
		reason += " (libinjection " + found.fingerprint + ")"
	}
	if injection == proxy.InjectionFlag {
		x.Event.Check, x.Event.Reason = InspectionName, "flagged: "+reason
		return nil
	}
	return deny(http.StatusForbidden, "", reason)
}

// inspectValues looks at the names and values of a parsed form.
func inspectValues(where string, vals url.Values, look func(where, name, v string) bool) {
	for k, vs := range vals {
		if !look(where+" name", "", k) {
			return
		}
		for _, v := range vs {
			if !look(where, k, v) {
				return
			}
		}
	}
}

// body reads and inspects the body by its content type, then puts the
// bytes back for the upstream. prior says the path or query already gave
// a finding (the body is then read and bounded but not searched); inject
// says injection detection is on. It returns the body's finding.
func (c *Inspection) body(x *proxy.Exchange, maxBody int64, account string, prior, inject bool) (*proxy.Denial, *finding) {
	var found *finding
	look := func(where, name, v string) bool {
		if prior {
			return false
		}
		if found == nil && inject {
			if found = detect(where, v); found != nil && name != "" {
				found.where += " " + clip(name, 64)
			}
		}
		return found == nil
	}
	d := c.readBody(x, maxBody, account, look)
	return d, found
}

// readBody is body's reading and scanning, with look as its callback.
func (c *Inspection) readBody(x *proxy.Exchange, maxBody int64, account string, look func(where, name, v string) bool) *proxy.Denial {
	r := x.Req
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	buf := &bytes.Buffer{}
	lr := &io.LimitedReader{R: r.Body, N: maxBody + 1}
	tee := bufio.NewReader(io.TeeReader(lr, buf))
	capture := x.BodyCapture() // nil unless the route captures body parameters
	var d *proxy.Denial
	switch {
	case ctype == "application/json" || strings.HasSuffix(ctype, "+json"):
		accountNext := false
		var leaf func(path, v []byte)
		if capture != nil {
			leaf = capture.JSONLeaf
		}
		err := proxy.ScanJSONLeaves(tee, c.cfg.JSON, func(s []byte, key bool) bool {
			switch {
			case account == "":
			case key:
				accountNext = string(s) == account
			case accountNext:
				x.Event.Account, account = AccountHash(string(s)), ""
			}
			where := "JSON value"
			if key {
				where = "JSON key"
			}
			return look(where, "", string(s))
		}, leaf)
		d = c.bodyError(err, lr)
	case ctype == "application/xml" || ctype == "text/xml" || strings.HasSuffix(ctype, "+xml"):
		d = c.bodyError(scanXML(tee), lr)
	case ctype == "application/x-www-form-urlencoded":
		if _, err := io.Copy(io.Discard, tee); err != nil {
			return c.bodyError(err, lr)
		}
		if lr.N <= 0 {
			break
		}
		form, err := url.ParseQuery(buf.String())
		if err != nil {
			return deny(http.StatusBadRequest, "The form body is malformed.", "form: "+err.Error())
		}
		inspectValues("form", form, look)
		if v := form.Get(account); account != "" && v != "" {
			x.Event.Account = AccountHash(v)
		}
		if capture != nil {
			capture.Form(buf.String())
		}
	}
	if d != nil {
		return d
	}
	// Read the rest (other types, or what a scan left), up to the limit.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return c.bodyError(err, lr)
	}
	if lr.N <= 0 {
		return deny(http.StatusRequestEntityTooLarge, "The request body is too large.",
			fmt.Sprintf("body over %d bytes", maxBody))
	}
	r.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
	r.ContentLength = int64(buf.Len())
	x.Event.RequestBytes = int64(buf.Len())
	return nil
}

func (c *Inspection) bodyError(err error, lr *io.LimitedReader) *proxy.Denial {
	if err == nil {
		return nil
	}
	if lr.N <= 0 {
		return deny(http.StatusRequestEntityTooLarge, "The request body is too large.", "body over the limit")
	}
	var je *proxy.JSONError
	if errors.As(err, &je) {
		if je.Limit {
			return deny(http.StatusRequestEntityTooLarge, "The JSON body exceeds its limits.", je.Error())
		}
		return deny(http.StatusBadRequest, "The JSON body is malformed.", je.Error())
	}
	if errors.Is(err, errXMLDTD) {
		return deny(http.StatusBadRequest, "XML with a DTD or entities is not accepted.", err.Error())
	}
	var xe *xml.SyntaxError
	if errors.As(err, &xe) {
		return deny(http.StatusBadRequest, "The XML body is malformed.", "XML: "+xe.Error())
	}
	return deny(http.StatusBadRequest, "The request body could not be read.", "reading body: "+err.Error())
}

var errXMLDTD = errors.New("XML body declares a DTD or entities")

// scanXML reads an XML document token by token and refuses any directive
// (<!DOCTYPE …>, which is where entities are declared): no DTD means no
// external entities (XXE) and no entity expansion (billion laughs).
func scanXML(r io.Reader) error {
	d := xml.NewDecoder(r)
	d.Strict = true
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if dir, ok := tok.(xml.Directive); ok {
			return fmt.Errorf("%w at byte %d: <!%s>", errXMLDTD, d.InputOffset(), clip(string(dir), 40))
		}
	}
}

// finding is an injection found in a request.
type finding struct {
	kind, where, fingerprint string
}

// detect runs libinjection's SQL injection and XSS detectors on v.
// Values of letters, digits and "_.@" only (most ids, names, numbers) cannot
// carry either, and skip the detectors.
func detect(where, v string) *finding {
	if len(v) < 2 || plain(v) {
		return nil
	}
	if ok, fp := libinjection.IsSQLi(v); ok {
		return &finding{kind: "sqli", where: where, fingerprint: fp}
	}
	if libinjection.IsXSS(v) {
		return &finding{kind: "xss", where: where}
	}
	return nil
}

func plain(v string) bool {
	for i := range len(v) {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '@') {
			return false
		}
	}
	return true
}
