package responder

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/apiguard/apiguard/event"
)

// GroupConfig is when several principals of one campaign become one
// network entry.
type GroupConfig struct {
	// MinAddresses is how many addresses of one /24 (IPv4) or /48 (IPv6)
	// blocked within Window make the network one block; 0 turns group
	// actions off.
	MinAddresses int `yaml:"min_addresses"`
	// Window is how recent the addresses' blocks must be.
	Window time.Duration `yaml:"window"`
	// TTL is how long the network (or fingerprint) stays blocked.
	TTL time.Duration `yaml:"ttl"`
	// MinFingerprintPrincipals is how many principals presenting one
	// client fingerprint blocked within Window make the fingerprint one
	// block, when no principal with good history presents it (group_fp.go);
	// 0 turns fingerprint groups off.
	MinFingerprintPrincipals int `yaml:"min_fingerprint_principals"`
	// MinASNPrincipals is how many addresses of one ASN (responder.asn_file)
	// blocked within Window make each prefix it announces one block, never
	// over principals with good history (group_asn.go); 0 turns ASN groups
	// off.
	MinASNPrincipals int `yaml:"min_asn_principals"`
}

// DefaultGroupConfig makes 10 addresses of one network blocked within 10
// minutes one block of the network for an hour, 5 principals of one
// fingerprint without good history one block of the fingerprint, and 10
// addresses of one ASN (with responder.asn_file) one block per prefix.
func DefaultGroupConfig() GroupConfig {
	return GroupConfig{MinAddresses: 10, Window: 10 * time.Minute, TTL: time.Hour, MinFingerprintPrincipals: 5, MinASNPrincipals: 10}
}

// Validate reports the first bad field by its config key.
func (c GroupConfig) Validate() error {
	switch {
	case c.MinFingerprintPrincipals != 0 && (c.MinFingerprintPrincipals < 2 || c.MinFingerprintPrincipals > maxFPFlagged):
		return fmt.Errorf("responder.groups.min_fingerprint_principals: %d, want 0 (off) or 2 to %d", c.MinFingerprintPrincipals, maxFPFlagged)
	case c.MinASNPrincipals != 0 && (c.MinASNPrincipals < 2 || c.MinASNPrincipals > maxFPFlagged):
		return fmt.Errorf("responder.groups.min_asn_principals: %d, want 0 (off) or 2 to %d", c.MinASNPrincipals, maxFPFlagged)
	case c.MinAddresses == 0 && c.MinFingerprintPrincipals == 0 && c.MinASNPrincipals == 0:
		return nil
	case c.MinAddresses != 0 && (c.MinAddresses < 2 || c.MinAddresses > 256):
		return fmt.Errorf("responder.groups.min_addresses: %d, want 0 (off) or 2 to 256", c.MinAddresses)
	case c.Window < time.Second || c.Window > 24*time.Hour:
		return fmt.Errorf("responder.groups.window: %s, want 1s to 24h", c.Window)
	case c.TTL < time.Second || c.TTL > MaxTTL:
		return fmt.Errorf("responder.groups.ttl: %s, want 1s to %s", c.TTL, MaxTTL)
	}
	return nil
}

// networkOf returns the /24 (IPv4) or /48 (IPv6) holding the address ip.
func networkOf(ip string) (string, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", false
	}
	a = a.Unmap()
	bits := 24
	if a.Is6() {
		bits = 48
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return "", false
	}
	return p.String(), true
}

// overlapsNeverBlock reports whether network holds an address of a
// never_block range (or lies inside one).
func (r *Responder) overlapsNeverBlock(network string) (netip.Prefix, bool) {
	n, err := netip.ParsePrefix(network)
	if err != nil {
		return netip.Prefix{}, false
	}
	for _, p := range r.never {
		if p.Overlaps(n) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// noteShared remembers the network of an address principal that an
// anomaly reports shared by more than max_shared_principals: such a
// network (a NAT, a corporate proxy's range) is never blocked whole.
func (r *Responder) noteShared(a *event.Anomaly, shared bool) {
	if !shared || a.Principal.GetKind() != event.KindIP {
		return
	}
	if n, ok := networkOf(a.Principal.Value); ok {
		r.mu.Lock()
		r.sharedNets[n] = true
		r.mu.Unlock()
	}
}

// group blocks the network of ip, just blocked for a, when MinAddresses of
// its addresses were blocked within Window and it is not blocked already:
// one entry instead of many. A network that overlaps never_block, holds an
// address reported as shared, or is allowed is not blocked whole (the
// action is recorded as dry-run saying why); the per-minute cap counts it
// as one action.
func (r *Responder) group(ctx context.Context, a *event.Anomaly, ip string) error {
	g := r.cfg.Groups
	if g.MinAddresses == 0 {
		return nil
	}
	network, ok := networkOf(ip)
	if !ok {
		return nil
	}
	// One decision per network at a time: partition workers call this
	// concurrently, and only the first past the threshold may act.
	r.groupMu.Lock()
	defer r.groupMu.Unlock()
	now := r.now()
	addrs := r.history.Network(network, now.Add(-g.Window))
	if len(addrs) < g.MinAddresses {
		return nil
	}
	b := groupBlock{rule: "group", target: &event.Principal{Kind: event.KindCIDR, Value: network}, noun: "network",
		why: fmt.Sprintf("%d addresses of %s blocked within %s (%s…)", len(addrs), network, g.Window, sampleOf(addrs))}
	d, ok := r.groupDecision(a, b, now)
	if !ok {
		return nil // already acted on within the window
	}
	r.mu.Lock()
	shared := r.sharedNets[network]
	r.mu.Unlock()
	if p, ok := r.overlapsNeverBlock(network); ok {
		holdBack(&d, fmt.Sprintf("network overlaps never_block %s: its addresses only", p))
	} else if shared {
		holdBack(&d, "network holds an address shared by more than max_shared_principals established principals: its addresses only")
	} else if r.deferToRecord(&d, b, b.rule+" "+network, func(ctx context.Context) error { return r.group(ctx, a, ip) }) {
		// Judged again when the record of who uses the network is whole.
	} else if why := r.networkSpared(netip.MustParsePrefix(network), d.Trigger); why != "" {
		holdBack(&d, fmt.Sprintf("network not blocked whole: %s: its addresses only", why))
	}
	return r.applyGroup(ctx, b, d)
}
