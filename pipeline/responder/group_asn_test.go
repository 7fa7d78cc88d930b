package responder_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// TestASNGroup: with responder.asn_file, min_asn_principals addresses of
// one ASN blocked within the window make each prefix it announces one
// cidr entry — except a prefix principals with good history use or one
// wider than /16, recorded only; fewer addresses, addresses of no listed
// ASN, or no file make no such entry.
func TestASNGroup(t *testing.T) {
	list := "# test ASNs\n100.64.0.0/22,AS64500\n192.0.2.0/24,AS64500\n10.0.0.0/8,AS64500\n198.18.0.0/24,AS64501\n"
	tests := []struct {
		name     string
		file     bool
		scanners []string
		good     string // an address a partner succeeds from
		want     []string
		recorded []string // prefixes recorded as dry-run
	}{
		{name: "five addresses of AS64500: its prefixes blocked", file: true,
			scanners: []string{"100.64.0.7", "100.64.1.7", "100.64.2.7", "100.64.3.7", "100.64.3.8"},
			want:     []string{"100.64.0.0/22", "192.0.2.0/24"}, recorded: []string{"10.0.0.0/8"}},
		{name: "a partner uses one of its prefixes: that one recorded only", file: true, good: "192.0.2.9",
			scanners: []string{"100.64.0.7", "100.64.1.7", "100.64.2.7", "100.64.3.7", "100.64.3.8"},
			want:     []string{"100.64.0.0/22"}, recorded: []string{"192.0.2.0/24", "10.0.0.0/8"}},
		{name: "four addresses: no group", file: true,
			scanners: []string{"100.64.0.7", "100.64.1.7", "100.64.2.7", "100.64.3.7"}},
		{name: "addresses of several ASNs: no group", file: true,
			scanners: []string{"100.64.0.7", "100.64.1.7", "198.18.0.7", "198.18.0.8", "203.0.113.7"}},
		{name: "no ASN file: no group",
			scanners: []string{"100.64.0.7", "100.64.1.7", "100.64.2.7", "100.64.3.7", "100.64.3.8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
			cfg := responder.DefaultConfig()
			cfg.Groups.MinASNPrincipals = 5
			if tt.file {
				cfg.ASNFile = filepath.Join(t.TempDir(), "asn.csv")
				if err := os.WriteFile(cfg.ASNFile, []byte(list), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			w, audit := &memWriter{entries: map[enforce.Key]enforce.Entry{}}, &memAudit{}
			r := responder.New(cfg, w, audit, func() time.Time { return now }, slog.New(slog.DiscardHandler))
			seesTraffic(r)
			if tt.good != "" {
				r.ObserveEvent(request("k-partner", tt.good, event.Decision_DECISION_ALLOW, 200))
			}
			for i, ip := range tt.scanners {
				if err := r.WriteAnomaly(context.Background(), mkAnomaly(fmt.Sprintf("s%d", i), "probing", "ip", ip, 0.95)); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for k := range w.entries {
				if k.Kind == enforce.KindCIDR {
					got = append(got, k.Value)
				}
			}
			if !sameSet(got, tt.want) {
				t.Errorf("cidr entries %v, want %v", got, tt.want)
			}
			for _, p := range tt.recorded {
				var rec *event.Action
				for _, act := range audit.actions {
					if act.Target.GetValue() == p {
						rec = act
					}
				}
				if rec == nil || !rec.DryRun || !strings.Contains(rec.Reason, "its addresses only") {
					t.Errorf("%s: recorded %+v, want a dry-run saying why", p, rec)
				}
			}
		})
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

// TestASNFileError: a bad ASN file is refused at start, naming the file
// and the line.
func TestASNFileError(t *testing.T) {
	cfg := responder.DefaultConfig()
	cfg.ASNFile = filepath.Join(t.TempDir(), "asn.csv")
	os.WriteFile(cfg.ASNFile, []byte("100.64.0.0/22,AS64500\n192.0.2.0/24,ASX\n"), 0o600)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "responder.asn_file "+cfg.ASNFile+": line 2: ASN \"ASX\"") {
		t.Errorf("bad file: %v", err)
	}
	cfg.ASNFile = filepath.Join(t.TempDir(), "missing.csv")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "responder.asn_file") {
		t.Errorf("missing file: %v", err)
	}
}
