package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// problem is an RFC 9457 problem details body.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"request_id"`
}

// writeProblem answers with d as application/problem+json. It writes only
// what the client may see: status, a generic title and detail, the request
// id to quote to support; never d.Reason.
func writeProblem(w http.ResponseWriter, d *Denial, requestID string) {
	h := w.Header()
	for k, vs := range d.Headers {
		h[k] = vs
	}
	if d.RawBody != nil {
		if d.RawType != "" {
			h.Set("Content-Type", d.RawType)
		}
		h.Set("Content-Length", strconv.Itoa(len(d.RawBody)))
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(d.Status)
		_, _ = w.Write(d.RawBody)
		return
	}
	title := d.Title
	if title == "" {
		title = http.StatusText(d.Status)
	}
	body, _ := json.Marshal(problem{Type: "about:blank", Title: title, Status: d.Status, Detail: d.Detail, RequestID: requestID})
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(d.Status)
	_, _ = w.Write(body)
}
