package responder_test

import (
	"maps"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// TestStolenCredentialPolicy: under the default policy, a stolen
// credential's owner (its subject, its API key) is never acted on; the new
// client the anomaly names is — its address blocked, its token revoked —
// and a stolen token is revoked.
func TestStolenCredentialPolicy(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tests := []struct {
		name  string
		a     *event.Anomaly
		want  map[string]string // "kind value" → action
		owner string            // "kind value" never acted on; empty for a token
	}{
		{name: "subject with the thief's address and token",
			a:    withMembers(mkAnomaly("s1", "stolen_token", "sub", "alice", 0.99), "ip 203.0.113.77", "token jti-thief"),
			want: map[string]string{"ip 203.0.113.77": "block", "token jti-thief": "revoke"}, owner: "sub alice"},
		{name: "API key with the thief's address",
			a:    withMembers(mkAnomaly("s2", "stolen_token", "key", "k-partner", 0.99), "ip 203.0.113.78"),
			want: map[string]string{"ip 203.0.113.78": "block"}, owner: "key k-partner"},
		{name: "subject whose thief's address is shared: nothing named, only flagged",
			a:    mkAnomaly("s3", "stolen_token", "sub", "alice", 0.99),
			want: map[string]string{}, owner: "sub alice"},
		{name: "a copied token: revoked (stolen-token-revoke acts on the principal only)",
			a:    withMembers(mkAnomaly("s4", "stolen_token", "token", "jti-copied", 0.99), "ip 203.0.113.79"),
			want: map[string]string{"token jti-copied": "revoke"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _, _ := run(t, responder.DefaultConfig(), clock, tt.a)
			got := map[string]string{}
			for k, e := range w.entries {
				got[k.String()] = e.Action.String()
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("entries %v, want %v", got, tt.want)
			}
			if _, ok := got[tt.owner]; ok && tt.owner != "" {
				t.Errorf("the owner %s was acted on", tt.owner)
			}
		})
	}
}
