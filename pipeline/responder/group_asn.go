package responder

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
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
	slices.Sort(ips)
	if len(ips) > 5 {
		ips = append(ips[:5], "…")
	}
	trigger := time.Unix(0, a.TimeUnixNano)
	for _, p := range prefixes {
		network := p.String()
		if last, ok := r.history.Last(event.KindCIDR, network); ok && now.Sub(last) < g.Window {
			continue
		}
		offences, _ := r.history.Of(event.KindCIDR, network, "", now)
		ttl := r.cfg.Escalation.escalate(g.TTL, offences)
		d := Decision{
			Kind:   event.ActionKind_ACTION_BLOCK,
			Target: &event.Principal{Kind: event.KindCIDR, Value: network},
			TTL:    ttl,
			Reason: fmt.Sprintf("%s anomaly on %s, score %.2f: %s; group: %d addresses of %s blocked within %s (%s), %s announced by it; rule group-asn",
				a.Detector, a.Api, a.Score, a.Summary, len(fl), asn, g.Window, strings.Join(ips, ", "), network),
			Actor: ActorPrefix + "group-asn", AnomalyID: a.Id, ID: event.HashID(now.Truncate(g.Window), "group-asn", network),
			Trigger: trigger, Policy: true,
		}
		if offences > 0 && ttl != g.TTL {
			d.Reason += fmt.Sprintf("; %d earlier offence(s) of the prefix: ttl %s escalated to %s", offences, g.TTL, ttl)
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
			d.DryRun = true
			d.Reason = fmt.Sprintf("prefix wider than /%d (IPv4) or /%d (IPv6): its addresses only; %s", minASNBits4, minASNBits6, d.Reason)
		case shared:
			d.DryRun = true
			d.Reason = fmt.Sprintf("prefix holds an address shared by more than max_shared_principals established principals: its addresses only; %s", d.Reason)
		default:
			if np, ok := r.overlapsNeverBlock(network); ok {
				d.DryRun = true
				d.Reason = fmt.Sprintf("prefix overlaps never_block %s: its addresses only; %s", np, d.Reason)
			} else if why := r.networkSpared(p, trigger); why != "" {
				d.DryRun = true
				d.Reason = fmt.Sprintf("prefix not blocked whole: %s: its addresses only; %s", why, d.Reason)
			}
		}
		res, err := r.Apply(ctx, d)
		if errors.Is(err, ErrInvalid) {
			r.log.Warn("ASN group entry refused", "prefix", network, "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("blocking prefix %s of %s: %w", network, asn, err)
		}
		if res.Enforced() {
			r.stats.Groups.Add(1)
		}
	}
	return nil
}
