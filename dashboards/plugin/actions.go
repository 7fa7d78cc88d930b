package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// maxBody bounds an action request's body.
const maxBody = 64 << 10

// ActionRequest is the body of POST actions/<action> (block, throttle,
// revoke, allow, unblock, unallow). TTL is a duration string ("1h"); ""
// or "0" keeps the entry until it is removed. Removals take no TTL.
type ActionRequest struct {
	// Action names the action when the path is "actions" alone; with
	// "actions/<action>" it may be left out, or must agree.
	Action string `json:"action,omitempty"`
	Kind   string `json:"kind"`
	Value  string `json:"value"`
	TTL    string `json:"ttl"`
	Reason string `json:"reason"`
	// AnomalyID ties the action to the anomaly the analyst acted on.
	AnomalyID string `json:"anomalyId,omitempty"`
}

// ActionResponse is every answer of the action resources: what was done,
// or why nothing was.
type ActionResponse struct {
	// Done is true when the bucket was changed.
	Done bool `json:"done"`
	// Message says what was done, or why not, in one sentence for the panel.
	Message string `json:"message"`
	// Action is the audited action, absent when the request was refused
	// before anything was recorded (bad input, no permission, no entry).
	Action *ActionJSON `json:"action,omitempty"`
	// Previous is the entry that was replaced or removed, if any.
	Previous *EntryJSON `json:"previous,omitempty"`
	// SparedBy is the allow entry that kept a block from being written.
	SparedBy *EntryJSON `json:"sparedBy,omitempty"`
}

// ActionJSON is an audited action.
type ActionJSON struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Action    string    `json:"action"`
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	TTL       int64     `json:"ttlSeconds"`
	Expires   string    `json:"expires,omitempty"`
	Reason    string    `json:"reason"`
	Actor     string    `json:"actor"`
	AnomalyID string    `json:"anomalyId,omitempty"`
	DryRun    bool      `json:"dryRun"`
}

// EntryJSON is an enforcement entry.
type EntryJSON struct {
	Kind    string `json:"kind"`
	Value   string `json:"value"`
	Action  string `json:"action"`
	Actor   string `json:"actor"`
	Reason  string `json:"reason"`
	Expires string `json:"expires,omitempty"`
}

// CallResource serves the data source's resources:
//
//	POST actions/{block,throttle,revoke,allow,unblock,unallow}  (ActionRequest → ActionResponse)
//	POST actions  (the same, the action named in the body)
//	GET  entries  (the active enforcement entries, as EntryJSON)
//
// Actions need the Editor or Admin role in the organisation; the actor
// recorded is "grafana:" + the user's login. Every action goes through
// responder.Apply, so it is validated, honours allow entries and is
// audited like the policy's and the operators'. Bad input is refused with
// 400 before anything is written.
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	path := strings.Trim(req.Path, "/")
	switch {
	case path == "entries":
		if req.Method != http.MethodGet {
			return send(sender, http.StatusMethodNotAllowed, ActionResponse{Message: "entries: use GET"})
		}
		return d.entries(ctx, sender)
	case path == "actions" || strings.HasPrefix(path, "actions/"):
		if req.Method != http.MethodPost {
			return send(sender, http.StatusMethodNotAllowed, ActionResponse{Message: "actions: use POST"})
		}
		status, resp := d.act(ctx, req.PluginContext, strings.TrimPrefix(strings.TrimPrefix(path, "actions"), "/"), req.Body)
		return send(sender, status, resp)
	}
	return send(sender, http.StatusNotFound, ActionResponse{Message: fmt.Sprintf("no resource %q (want actions/<action> or entries)", path)})
}

// canAct reports whether the user may act: organisation Editors and Admins.
func canAct(u *backend.User) bool {
	return u != nil && u.Login != "" && (u.Role == "Editor" || u.Role == "Admin")
}

// act applies one action and returns the HTTP status and the answer.
func (d *Datasource) act(ctx context.Context, pctx backend.PluginContext, name string, body []byte) (int, ActionResponse) {
	if !canAct(pctx.User) {
		role := "no role"
		if pctx.User != nil && pctx.User.Role != "" {
			role = "role " + pctx.User.Role
		}
		return http.StatusForbidden, ActionResponse{Message: "only Editors and Admins act; this user has " + role}
	}
	if len(body) > maxBody {
		return http.StatusRequestEntityTooLarge, ActionResponse{Message: fmt.Sprintf("body is %d bytes, limit %d", len(body), maxBody)}
	}
	var ar ActionRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ar); err != nil {
		return http.StatusBadRequest, ActionResponse{Message: "malformed JSON body: " + err.Error()}
	}
	if dec.More() {
		return http.StatusBadRequest, ActionResponse{Message: "malformed JSON body: more than one object"}
	}
	switch {
	case name == "":
		name = ar.Action
	case ar.Action != "" && ar.Action != name:
		return http.StatusBadRequest, ActionResponse{Message: fmt.Sprintf("action: %q in the body, %q in the path", ar.Action, name)}
	}
	kind, err := event.ParseActionKind(name)
	if err != nil {
		return http.StatusBadRequest, ActionResponse{Message: err.Error()}
	}
	var ttl time.Duration
	if kind.Puts() && ar.TTL != "" && ar.TTL != "0" {
		if ttl, err = time.ParseDuration(ar.TTL); err != nil {
			return http.StatusBadRequest, ActionResponse{Message: fmt.Sprintf("ttl: %q is not a duration (like 30m or 24h)", ar.TTL)}
		}
		if ttl <= 0 {
			return http.StatusBadRequest, ActionResponse{Message: fmt.Sprintf("ttl: %s, want at least %s, or 0 for no expiry", ttl, kv.MinTTL)}
		}
	}
	if strings.TrimSpace(ar.Reason) == "" {
		ar.Reason = kind.Name() + " from Grafana"
	}
	dec2 := responder.Decision{Kind: kind, Target: &event.Principal{Kind: ar.Kind, Value: ar.Value}, TTL: ttl,
		Reason: ar.Reason, Actor: "grafana:" + pctx.User.Login, AnomalyID: ar.AnomalyID}
	if err := dec2.Validate(); err != nil {
		return http.StatusBadRequest, ActionResponse{Message: strings.TrimPrefix(err.Error(), responder.ErrInvalid.Error()+": ")}
	}
	resp, _, err := d.responder(ctx)
	if err != nil {
		return http.StatusBadGateway, ActionResponse{Message: err.Error()}
	}
	res, err := resp.Apply(ctx, dec2)
	switch {
	case errors.Is(err, responder.ErrInvalid):
		return http.StatusBadRequest, ActionResponse{Message: strings.TrimPrefix(err.Error(), responder.ErrInvalid.Error()+": ")}
	case errors.Is(err, kv.ErrNotFound):
		return http.StatusNotFound, ActionResponse{Message: err.Error() + ": nothing to " + kind.Name()}
	case errors.Is(err, responder.ErrWrongEntry), errors.Is(err, kv.ErrChanged):
		return http.StatusConflict, ActionResponse{Message: err.Error()}
	case err != nil:
		d.log.Error("action failed", "action", kind.Name(), "kind", ar.Kind, "actor", dec2.Actor, "err", err)
		return http.StatusBadGateway, ActionResponse{Message: err.Error()}
	}
	d.log.Info("action", "action", kind.Name(), "kind", res.Action.Target.Kind, "value", res.Action.Target.Value,
		"actor", dec2.Actor, "dry_run", res.Action.DryRun)
	out := ActionResponse{Done: res.Enforced(), Action: actionJSON(res), Previous: entryJSON(res.Previous), SparedBy: entryJSON(res.SparedBy)}
	t := res.Action.Target
	switch {
	case res.SparedBy != nil:
		out.Message = fmt.Sprintf("%s %s not %sed: %s (recorded as dry-run); remove the allow entry on %s %s first",
			t.Kind, t.Value, strings.TrimSuffix(kind.Name(), "e"), strings.TrimSuffix(res.Action.Reason, "; "+dec2.Reason), res.SparedBy.Kind, res.SparedBy.Value)
		return http.StatusConflict, out
	case !kind.Puts():
		out.Message = fmt.Sprintf("%s %s: removed its %s by %s", kind.Name(), t.Kind+" "+t.Value, res.Previous.Action, res.Previous.Actor)
	default:
		out.Message = fmt.Sprintf("%s %s %s until %s", kind.Name(), t.Kind, t.Value, out.Action.expiresText())
	}
	return http.StatusOK, out
}

func (a *ActionJSON) expiresText() string {
	if a.Expires == "" {
		return "removed"
	}
	return a.Expires
}

func actionJSON(res responder.Result) *ActionJSON {
	a := res.Action
	j := &ActionJSON{ID: a.Id, Time: time.Unix(0, a.TimeUnixNano).UTC(), Action: a.Kind.Name(), Kind: a.Target.Kind,
		Value: a.Target.Value, TTL: a.TtlSeconds, Reason: a.Reason, Actor: a.Actor, AnomalyID: a.AnomalyId, DryRun: a.DryRun}
	if res.Entry != nil && !res.Entry.Expires.IsZero() {
		j.Expires = res.Entry.Expires.UTC().Format(time.RFC3339)
	}
	return j
}

func (d *Datasource) entries(ctx context.Context, sender backend.CallResourceResponseSender) error {
	w, err := d.writer(ctx)
	if err != nil {
		return send(sender, http.StatusBadGateway, ActionResponse{Message: err.Error()})
	}
	entries, errs := w.List(ctx)
	if len(entries) == 0 && len(errs) > 0 {
		return send(sender, http.StatusBadGateway, ActionResponse{Message: errs[0].Error()})
	}
	now := d.now()
	out := []*EntryJSON{}
	for i := range entries {
		if !entries[i].Expired(now) {
			out = append(out, entryJSON(&entries[i]))
		}
	}
	return send(sender, http.StatusOK, out)
}

func send(sender backend.CallResourceResponseSender, status int, body any) error {
	return sender.Send(&backend.CallResourceResponse{Status: status,
		Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: mustJSON(body)})
}

// mustJSON encodes v, whose types always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding %T: %v", v, err))
	}
	return b
}

func entryJSON(e *enforce.Entry) *EntryJSON {
	if e == nil {
		return nil
	}
	j := &EntryJSON{Kind: e.Kind.String(), Value: e.Value, Action: e.Action.String(), Actor: e.Actor, Reason: e.Reason}
	if !e.Expires.IsZero() {
		j.Expires = e.Expires.UTC().Format(time.RFC3339)
	}
	return j
}
