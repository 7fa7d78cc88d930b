package plugin

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// Query types of the apiguard data source: the queryType of a panel's
// query, one typed JSON model each (below). Dashboards name them, and a
// lint checks every dashboard query against QueryTypeNames, so a name is
// never changed once released; add a new one instead. Every type but
// QueryTypeEnforcement is answered from ClickHouse by Queries.
const (
	// QueryTypeEnforcement is the active enforcement entries, read from
	// the KV bucket by the data source itself rather than from ClickHouse:
	// one row per entry with its action, reason, actor and the TTL left.
	// The query model takes no options.
	QueryTypeEnforcement = "enforcement"
	// QueryTypeSeries is request counts over time by API and decision,
	// bucketed by the panel's interval (SeriesQuery).
	QueryTypeSeries = "series"
	// QueryTypeTopPrincipals is the principals with the highest risk or
	// the most anomalies in the time range (TopPrincipalsQuery).
	QueryTypeTopPrincipals = "top_principals"
	// QueryTypeAnomalies is the anomaly list with its explanations
	// (AnomaliesQuery).
	QueryTypeAnomalies = "anomalies"
	// QueryTypeAnomalyDetail is one anomaly, what deviated, and the
	// events that triggered it (AnomalyDetailQuery).
	QueryTypeAnomalyDetail = "anomaly_detail"
	// QueryTypeBaselines is each API's baselines against the values
	// observed: request rate, volume, errors, latency and the detectors'
	// per-principal features (BaselinesQuery).
	QueryTypeBaselines = "baselines"
	// QueryTypePrincipalTimeline is one principal's requests, decisions,
	// anomalies and actions (PrincipalTimelineQuery).
	QueryTypePrincipalTimeline = "principal_timeline"
	// QueryTypeInventory is the shadow and zombie APIs (InventoryQuery).
	QueryTypeInventory = "inventory"
	// QueryTypeAudit is the audit of actions (AuditQuery).
	QueryTypeAudit = "audit"
	// QueryTypeSQL is an analyst's own single SELECT, run read-only
	// (SQLQuery).
	QueryTypeSQL = "sql"
	// QueryTypeVariable lists the values of a template variable: APIs,
	// principals or detectors (VariableQuery).
	QueryTypeVariable = "variable"
)

// QueryTypeNames returns every query type the data source answers,
// sorted: those Queries answers from ClickHouse and QueryTypeEnforcement.
// The dashboards' lint and query builder check against it, and a test
// holds the frontend's list (frontend/src/datasource/types.ts) equal to
// it.
func QueryTypeNames() []string {
	names := make([]string, 0, len(queryHandlers)+1)
	for n := range queryHandlers {
		names = append(names, n)
	}
	names = append(names, QueryTypeEnforcement)
	sort.Strings(names)
	return names
}

// Group-by values of SeriesQuery.
const (
	GroupByAPIDecision = "api_decision"
	GroupByAPI         = "api"
	GroupByDecision    = "decision"
	GroupByTotal       = "total"
)

// Metrics of SeriesQuery.
const (
	MetricRequests     = "requests"
	MetricServerErrors = "server_errors"
	MetricClientErrors = "client_errors"
)

// SeriesQuery counts requests per time bucket (dq.Interval, at least a
// second) by API and decision. Every filter is optional.
type SeriesQuery struct {
	// API and APIs keep only these route templates ("GET /orders/{id}").
	API  string   `json:"api,omitempty"`
	APIs []string `json:"apis,omitempty"`
	// Decisions keeps only these decisions: allow, block, throttle,
	// challenge, revoked.
	Decisions []string `json:"decisions,omitempty"`
	// GroupBy is api_decision (default), api, decision or sum.
	GroupBy string `json:"groupBy,omitempty"`
	// Metric is requests (default), server_errors (5xx) or
	// client_errors (4xx).
	Metric string `json:"metric,omitempty"`
	// Limit is the most series returned, those with the largest totals,
	// 1 to 1000 (default 100).
	Limit int `json:"limit,omitempty"`
}

// Orderings of TopPrincipalsQuery.
const (
	ByRisk      = "risk"
	ByAnomalies = "anomalies"
)

// TopPrincipalsQuery ranks the principals that anomalies name.
type TopPrincipalsQuery struct {
	// OrderBy is risk (default: the highest combined risk, then score)
	// or anomalies (the most anomalies).
	OrderBy string `json:"orderBy,omitempty"`
	// Limit is the number of principals, 1 to 1000 (default 20).
	Limit int `json:"limit,omitempty"`
	// API, APIs, Detector and Detectors keep only anomalies of these.
	API       string   `json:"api,omitempty"`
	APIs      []string `json:"apis,omitempty"`
	Detector  string   `json:"detector,omitempty"`
	Detectors []string `json:"detectors,omitempty"`
}

// AnomaliesQuery lists anomalies, newest first. Every filter is optional.
type AnomaliesQuery struct {
	API       string   `json:"api,omitempty"`
	APIs      []string `json:"apis,omitempty"`
	Detector  string   `json:"detector,omitempty"`
	Detectors []string `json:"detectors,omitempty"`
	// MinSeverity is low, medium, high or critical.
	MinSeverity string `json:"minSeverity,omitempty"`
	// MinScore is in [0,1].
	MinScore float64 `json:"minScore,omitempty"`
	// PrincipalKind and PrincipalValue keep one principal's anomalies
	// (see PrincipalTimelineQuery).
	PrincipalKind  string `json:"principalKind,omitempty"`
	PrincipalValue string `json:"principalValue,omitempty"`
	// Limit is 1 to 10000 (default 100).
	Limit int `json:"limit,omitempty"`
}

// AnomalyDetailQuery is one anomaly by id; the time range is not used.
type AnomalyDetailQuery struct {
	// AnomalyID is required.
	AnomalyID string `json:"anomalyId"`
	// EventLimit bounds the triggering events returned, 1 to 5000
	// (default 1000; their ids are written into the SQL, which
	// ClickHouse bounds to 256 KiB).
	EventLimit int `json:"eventLimit,omitempty"`
}

// BaselinesQuery compares each API's normal with what was observed.
type BaselinesQuery struct {
	API  string   `json:"api,omitempty"`
	APIs []string `json:"apis,omitempty"`
	// ReferenceHours is how far before the time range the reference for
	// rate, volume, errors and latency reaches, 1 to 720 (default 24).
	ReferenceHours int `json:"referenceHours,omitempty"`
}

// Views of PrincipalTimelineQuery.
const (
	ViewSeries = "series"
	ViewEvents = "events"
)

// PrincipalTimelineQuery is one principal's history.
type PrincipalTimelineQuery struct {
	// PrincipalKind is ip, cidr, key, token, sub or fp, PrincipalValue
	// its value (required). With the kind empty, the value is
	// "kind:value", as the principal variable lists it.
	PrincipalKind  string `json:"principalKind,omitempty"`
	PrincipalValue string `json:"principalValue"`
	// View is series (default: requests per bucket by decision) or
	// events (anomalies, actions and refused requests, newest first).
	View string `json:"view,omitempty"`
	// IncludeAllowed adds allowed requests to the events view.
	IncludeAllowed bool `json:"includeAllowed,omitempty"`
	// Limit bounds the events view, 1 to 10000 (default 500).
	Limit int `json:"limit,omitempty"`
}

// Status filters of InventoryQuery.
const (
	InventoryAll        = "all"
	InventoryShadow     = "shadow"
	InventoryZombie     = "zombie"
	InventoryUndeclared = "undeclared"
)

// InventoryQuery lists shadow and zombie APIs.
type InventoryQuery struct {
	// Status is all (default), shadow, zombie or undeclared.
	Status string `json:"status,omitempty"`
	// Declared, when set, is the declared inventory as route templates:
	// any other API served (2xx, 3xx) counts as shadow, from the events,
	// besides what the inventory detector reported.
	Declared []string `json:"declared,omitempty"`
}

// Dry-run filters of AuditQuery.
const (
	DryRunAll     = ""
	DryRunOnly    = "only"
	DryRunExclude = "exclude"
)

// AuditQuery is the audit trail of actions, newest first.
type AuditQuery struct {
	// Kinds keeps only these: block, throttle, revoke, unblock, allow,
	// unallow.
	Kinds []string `json:"kinds,omitempty"`
	// Actor keeps only one actor ("policy:default", a Grafana login).
	Actor string `json:"actor,omitempty"`
	// PrincipalKind and PrincipalValue keep one target (see
	// PrincipalTimelineQuery).
	PrincipalKind  string `json:"principalKind,omitempty"`
	PrincipalValue string `json:"principalValue,omitempty"`
	// DryRun is "" (all), only or exclude.
	DryRun string `json:"dryRun,omitempty"`
	// Limit is 1 to 10000 (default 500).
	Limit int `json:"limit,omitempty"`
}

// SQLQuery is an analyst's own query.
type SQLQuery struct {
	// SQL is one SELECT (or WITH … SELECT); $__timeFilter(column),
	// $__timeFrom, $__timeTo and $__interval_s are expanded.
	SQL string `json:"rawSql"`
}

// Variables of VariableQuery.
const (
	VariableAPI       = "api"
	VariablePrincipal = "principal"
	VariableDetector  = "detector"
)

// Sources of the principal variable.
const (
	SourceEvents    = "events"
	SourceAnomalies = "anomalies"
)

// VariableQuery lists a template variable's values in the time range.
type VariableQuery struct {
	// Variable is api, principal or detector.
	Variable string `json:"variable"`
	// PrincipalKind restricts principals to one kind; their values are
	// then bare, otherwise "kind:value".
	PrincipalKind string `json:"principalKind,omitempty"`
	// API restricts principals and detectors to those of one API.
	API string `json:"api,omitempty"`
	// Source of principals: events (default: those with requests, most
	// active first) or anomalies (those anomalies name, most anomalies
	// first; far cheaper over a long range).
	Source string `json:"source,omitempty"`
	// Search keeps values containing it (case-insensitive).
	Search string `json:"search,omitempty"`
	// Limit is 1 to 10000 (default 1000).
	Limit int `json:"limit,omitempty"`
}

// Closed sets of the models' enumerated fields, as stored.
var (
	decisionNames = []string{"allow", "block", "throttle", "challenge", "revoked", "unspecified"}
	severityNames = []string{"unspecified", "low", "medium", "high", "critical"}
	actionNames   = []string{"block", "throttle", "revoke", "unblock", "allow", "unallow"}
)

// principalKinds are the kinds a query may name a principal by.
var principalKinds = []string{event.KindIP, event.KindCIDR, event.KindKey, event.KindToken, event.KindSub, event.KindFP}

// maxValueLen bounds a principal's value and other free-text filters.
const maxValueLen = 1024

// principalFilter is a validated principal filter.
type principalFilter struct {
	kind, value string
	prefix      netip.Prefix // cidr only
}

// parsePrincipal validates a kind and value, or "kind:value" in value
// when kind is empty.
func parsePrincipal(kind, value string) (principalFilter, error) {
	if kind == "" {
		k, v, ok := strings.Cut(value, ":")
		if !ok {
			return principalFilter{}, invalidf("principalValue: %q, want principalKind and a value, or \"kind:value\" with kind one of %s", value, strings.Join(principalKinds, ", "))
		}
		kind, value = k, v
	}
	if !slices.Contains(principalKinds, kind) {
		return principalFilter{}, invalidf("principalKind: %q is not a principal kind, want one of %s", kind, strings.Join(principalKinds, ", "))
	}
	if value == "" {
		return principalFilter{}, invalidf("principalValue: empty, a %s principal needs a value", kind)
	}
	if len(value) > maxValueLen {
		return principalFilter{}, invalidf("principalValue: %d bytes, at most %d", len(value), maxValueLen)
	}
	p := principalFilter{kind: kind, value: value}
	switch kind {
	case event.KindIP:
		a, err := netip.ParseAddr(value)
		if err != nil {
			return principalFilter{}, invalidf("principalValue: %q is not an IP address", value)
		}
		p.value = a.Unmap().String()
	case event.KindCIDR:
		pr, err := netip.ParsePrefix(value)
		if err != nil {
			return principalFilter{}, invalidf("principalValue: %q is not a CIDR prefix", value)
		}
		p.prefix = pr.Masked()
		p.value = p.prefix.String()
	}
	return p, nil
}

// checkOneOf checks that each of vals is in set.
func checkOneOf(name string, vals, set []string) error {
	for _, v := range vals {
		if !slices.Contains(set, v) {
			return invalidf("%s: %q, want one of %s", name, v, strings.Join(set, ", "))
		}
	}
	return nil
}

// modelLimit applies a model's default and range to n.
func modelLimit(name string, n, def, most int) (int, error) {
	switch {
	case n == 0:
		return def, nil
	case n < 0 || n > most:
		return 0, invalidf("%s: %d, want 1 to %d", name, n, most)
	}
	return n, nil
}

// checkList bounds a list filter of free text.
func checkList(name string, vals []string) error {
	if len(vals) > 1000 {
		return invalidf("%s: %d values, at most 1000", name, len(vals))
	}
	total := 0
	for _, v := range vals {
		if len(v) > maxValueLen {
			return invalidf("%s: a value of %d bytes, at most %d", name, len(v), maxValueLen)
		}
		total += len(v)
	}
	if total > maxListBytes {
		return invalidf("%s: %d bytes in all, at most %d", name, total, maxListBytes)
	}
	return nil
}

// maxListBytes bounds a list filter's text, which is written into the SQL:
// ClickHouse refuses a query longer than max_query_size (256 KiB by
// default).
const maxListBytes = 64 << 10

// withOne returns list with one added when one is set.
func withOne(list []string, one string) []string {
	if one == "" {
		return list
	}
	return append(list, one)
}

func (m *SeriesQuery) validate() (err error) {
	m.APIs = withOne(m.APIs, m.API)
	if m.Limit, err = modelLimit("limit", m.Limit, 100, 1000); err != nil {
		return err
	}
	if m.GroupBy == "" {
		m.GroupBy = GroupByAPIDecision
	}
	if m.Metric == "" {
		m.Metric = MetricRequests
	}
	if err := checkOneOf("groupBy", []string{m.GroupBy}, []string{GroupByAPIDecision, GroupByAPI, GroupByDecision, GroupByTotal}); err != nil {
		return err
	}
	if err := checkOneOf("metric", []string{m.Metric}, []string{MetricRequests, MetricServerErrors, MetricClientErrors}); err != nil {
		return err
	}
	if err := checkList("apis", m.APIs); err != nil {
		return err
	}
	return checkOneOf("decisions", m.Decisions, decisionNames)
}

func (m *TopPrincipalsQuery) validate() (err error) {
	m.APIs, m.Detectors = withOne(m.APIs, m.API), withOne(m.Detectors, m.Detector)
	if m.OrderBy == "" {
		m.OrderBy = ByRisk
	}
	if err := checkOneOf("orderBy", []string{m.OrderBy}, []string{ByRisk, ByAnomalies}); err != nil {
		return err
	}
	if m.Limit, err = modelLimit("limit", m.Limit, 20, 1000); err != nil {
		return err
	}
	if err := checkList("apis", m.APIs); err != nil {
		return err
	}
	return checkList("detectors", m.Detectors)
}

func (m *AnomaliesQuery) validate() (p *principalFilter, err error) {
	m.APIs, m.Detectors = withOne(m.APIs, m.API), withOne(m.Detectors, m.Detector)
	if m.Limit, err = modelLimit("limit", m.Limit, 100, 10000); err != nil {
		return nil, err
	}
	if m.MinSeverity != "" {
		if err := checkOneOf("minSeverity", []string{m.MinSeverity}, severityNames[1:]); err != nil {
			return nil, err
		}
	}
	if m.MinScore < 0 || m.MinScore > 1 {
		return nil, invalidf("minScore: %g, want 0 to 1", m.MinScore)
	}
	if err := checkList("apis", m.APIs); err != nil {
		return nil, err
	}
	if err := checkList("detectors", m.Detectors); err != nil {
		return nil, err
	}
	if m.PrincipalKind != "" || m.PrincipalValue != "" {
		pr, err := parsePrincipal(m.PrincipalKind, m.PrincipalValue)
		if err != nil {
			return nil, err
		}
		p = &pr
	}
	return p, nil
}

func (m *AnomalyDetailQuery) validate() (err error) {
	if m.AnomalyID == "" {
		return invalidf("anomalyId: required")
	}
	if len(m.AnomalyID) > 64 {
		return invalidf("anomalyId: %q is not an anomaly id", m.AnomalyID)
	}
	m.EventLimit, err = modelLimit("eventLimit", m.EventLimit, 1000, 5000)
	return err
}

func (m *BaselinesQuery) validate() (err error) {
	m.APIs = withOne(m.APIs, m.API)
	if m.ReferenceHours, err = modelLimit("referenceHours", m.ReferenceHours, 24, 720); err != nil {
		return err
	}
	return checkList("apis", m.APIs)
}

func (m *PrincipalTimelineQuery) validate() (p principalFilter, err error) {
	if m.PrincipalValue == "" {
		return p, invalidf("principalValue: required")
	}
	if p, err = parsePrincipal(m.PrincipalKind, m.PrincipalValue); err != nil {
		return p, err
	}
	if m.View == "" {
		m.View = ViewSeries
	}
	if err := checkOneOf("view", []string{m.View}, []string{ViewSeries, ViewEvents}); err != nil {
		return p, err
	}
	m.Limit, err = modelLimit("limit", m.Limit, 500, 10000)
	return p, err
}

func (m *InventoryQuery) validate() error {
	if m.Status == "" {
		m.Status = InventoryAll
	}
	if err := checkOneOf("status", []string{m.Status}, []string{InventoryAll, InventoryShadow, InventoryZombie, InventoryUndeclared}); err != nil {
		return err
	}
	return checkList("declared", m.Declared)
}

func (m *AuditQuery) validate() (p *principalFilter, err error) {
	if err := checkOneOf("kinds", m.Kinds, actionNames); err != nil {
		return nil, err
	}
	if err := checkOneOf("dryRun", []string{m.DryRun}, []string{DryRunAll, DryRunOnly, DryRunExclude}); err != nil {
		return nil, err
	}
	if len(m.Actor) > maxValueLen {
		return nil, invalidf("actor: %d bytes, at most %d", len(m.Actor), maxValueLen)
	}
	if m.Limit, err = modelLimit("limit", m.Limit, 500, 10000); err != nil {
		return nil, err
	}
	if m.PrincipalKind != "" || m.PrincipalValue != "" {
		pr, err := parsePrincipal(m.PrincipalKind, m.PrincipalValue)
		if err != nil {
			return nil, err
		}
		p = &pr
	}
	return p, nil
}

func (m *VariableQuery) validate() (err error) {
	if err := checkOneOf("variable", []string{m.Variable}, []string{VariableAPI, VariablePrincipal, VariableDetector}); err != nil {
		return err
	}
	if m.PrincipalKind != "" && !slices.Contains(principalKinds, m.PrincipalKind) {
		return invalidf("principalKind: %q is not a principal kind, want one of %s", m.PrincipalKind, strings.Join(principalKinds, ", "))
	}
	if len(m.API) > maxValueLen {
		return invalidf("api: %d bytes, at most %d", len(m.API), maxValueLen)
	}
	if m.Source == "" {
		m.Source = SourceEvents
	}
	if err := checkOneOf("source", []string{m.Source}, []string{SourceEvents, SourceAnomalies}); err != nil {
		return err
	}
	if len(m.Search) > maxValueLen {
		return invalidf("search: %d bytes, at most %d", len(m.Search), maxValueLen)
	}
	m.Limit, err = modelLimit("limit", m.Limit, 1000, 10000)
	return err
}
