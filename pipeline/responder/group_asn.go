package responder

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/apiguard/apiguard/event"
)

// ASN groups: when responder.asn_file is set, MinASNPrincipals addresses of
// one ASN blocked within the group window make each prefix the ASN
// announces one cidr entry — never a prefix that principals with good
// history use, overlaps never_block, or is wider than an IPv4 /16 (IPv6
// /32); at most maxASNPrefixes entries per ASN (one that announces more
// has only the prefixes holding its blocked addresses blocked).
const (
	maxASNPrefixes = 32
	minASNBits4    = 16
	minASNBits6    = 32
)

// asnFlag is an address of an ASN the policy blocked.
type asnFlag struct {
	ip string
	at time.Time // wall clock
}

// groupASN records the block of address ip for a and blocks its ASN's
// prefixes when enough of its addresses were blocked within the window.
func (r *Responder) groupASN(ctx context.Context, a *event.Anomaly, ip string) error {
	g := r.cfg.Groups
	if r.asn == nil || g.MinASNPrincipals == 0 {
		return nil
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return nil
	}
	asn, _ := r.asn.Lookup(addr)
	if asn == "" {
		return nil
	}
	r.groupMu.Lock()
	defer r.groupMu.Unlock()
	now := r.now()
	cut := now.Add(-g.Window)
	fl := slices.DeleteFunc(r.asnFlags[asn], func(f asnFlag) bool { return f.at.Before(cut) || f.ip == ip })
	if len(fl) >= maxFPFlagged {
		fl = fl[1:]
	}
	fl = append(fl, asnFlag{ip: ip, at: now})
	r.asnFlags[asn] = fl
	if len(fl) < g.MinASNPrincipals {
		return nil
	}
	prefixes := r.asn.Prefixes(asn)
	if len(prefixes) > maxASNPrefixes {
		var holding []netip.Prefix
		for _, f := range fl {
			if x, err := netip.ParseAddr(f.ip); err == nil {
				if _, p := r.asn.Lookup(x); p.IsValid() && !slices.Contains(holding, p) {
					holding = append(holding, p)
				}
			}
		}
		prefixes = holding
	}
	ips := make([]string, len(fl))
	for i, f := range fl {
		ips[i] = f.ip
	}
	sample := sampleOf(ips)
	if len(ips) > 5 {
		sample += ", …"
	}
	for _, p := range prefixes {
		network := p.String()
		b := groupBlock{rule: "group-asn", target: &event.Principal{Kind: event.KindCIDR, Value: network}, noun: "prefix",
			why: fmt.Sprintf("%d addresses of %s blocked within %s (%s), %s announced by it", len(fl), asn, g.Window, sample, network)}
		d, ok := r.groupDecision(a, b, now)
		if !ok {
			continue // already acted on within the window
		}
		r.mu.Lock()
		shared := false
		for n := range r.sharedNets {
			if q, err := netip.ParsePrefix(n); err == nil && q.Overlaps(p) {
				shared = true
				break
			}
		}
		r.mu.Unlock()
		switch {
		case p.Addr().Is4() && p.Bits() < minASNBits4 || p.Addr().Is6() && p.Bits() < minASNBits6:
			holdBack(&d, fmt.Sprintf("prefix wider than /%d (IPv4) or /%d (IPv6): its addresses only", minASNBits4, minASNBits6))
		case shared:
			holdBack(&d, "prefix holds an address shared by more than max_shared_principals established principals: its addresses only")
		default:
			if np, ok := r.overlapsNeverBlock(network); ok {
				holdBack(&d, fmt.Sprintf("prefix overlaps never_block %s: its addresses only", np))
			} else if r.deferToRecord(&d, b, "group-asn "+asn, func(ctx context.Context) error { return r.groupASN(ctx, a, ip) }) {
				// Judged again (every prefix of the ASN) when the record is whole.
			} else if why := r.networkSpared(p, d.Trigger); why != "" {
				holdBack(&d, fmt.Sprintf("prefix not blocked whole: %s: its addresses only", why))
			}
		}
		if err := r.applyGroup(ctx, b, d); err != nil {
			return fmt.Errorf("ASN group of %s: %w", asn, err)
		}
	}
	return nil
}
