//lint:file-ignore SA1019 we generate the classic dashboard JSON, which Grafana's file provisioning loads; the SDK marks its types deprecated in favour of dashboardv2

package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

// models maps each query type to the plugin's model of its options: a
// query may carry only those (besides Grafana's own fields).
var models = map[string]any{
	plugin.QueryTypeSeries:            plugin.SeriesQuery{},
	plugin.QueryTypeTopPrincipals:     plugin.TopPrincipalsQuery{},
	plugin.QueryTypeAnomalies:         plugin.AnomaliesQuery{},
	plugin.QueryTypeAnomalyDetail:     plugin.AnomalyDetailQuery{},
	plugin.QueryTypeBaselines:         plugin.BaselinesQuery{},
	plugin.QueryTypePrincipalTimeline: plugin.PrincipalTimelineQuery{},
	plugin.QueryTypeInventory:         plugin.InventoryQuery{},
	plugin.QueryTypeAudit:             plugin.AuditQuery{},
	plugin.QueryTypeSQL:               plugin.SQLQuery{},
	plugin.QueryTypeVariable:          plugin.VariableQuery{},
	plugin.QueryTypeEnforcement:       struct{}{},
}

// grafanaFields are a query's fields that Grafana sets, whatever its type.
var grafanaFields = []string{"refId", "hide", "datasource", "queryType"}

// liveTypes may ask for a live channel ("live": true).
var liveTypes = []string{plugin.QueryTypeAnomalies, plugin.QueryTypeAudit}

// interpolated are the query options in which the data source's frontend
// replaces template variables (datasource.ts applyTemplateVariables).
var interpolated = []string{"api", "principalValue", "detector", "anomalyId", "rawSql"}

// actionNames are the data source's action resources (docs/grafana.md).
var actionNames = []string{"block", "throttle", "revoke", "allow", "unblock", "unallow"}

var (
	varRef     = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z_][A-Za-z0-9_]*)`)
	dataField  = regexp.MustCompile(`\$\{__data\.fields\.([A-Za-z0-9_]+)\}`)
	dashboardD = regexp.MustCompile(`^/d/([^/?]+)`)
	fieldRegex = regexp.MustCompile(`^/\^([A-Za-z0-9_]+)\$/$`)
)

// Lint checks dashboards against the house rules and returns every
// breach, each naming the dashboard and panel:
//
//   - every dashboard has a uid, a title, a description and the apiguard tag;
//   - every panel has a title and a description, and names its data
//     source: a provisioned uid (apiguard, prometheus) of the right type,
//     or a defined variable; so does each of its queries;
//   - every apiguard query names a query type the plugin answers, and
//     carries only the options of that type's model (decoded strictly
//     into it), live only where the type has a live channel, variables
//     only in the options the frontend replaces;
//   - every variable used anywhere (queries, links, actions, titles) is
//     defined, or one of Grafana's own (names starting with __);
//   - every link to a dashboard names an existing uid, every dashboards
//     link's tags match another dashboard, every action posts to one of
//     the data source's action resources.
func Lint(ds []dashboard.Dashboard) []error {
	files := map[string][]byte{}
	var errs []error
	for _, d := range ds {
		b, err := Marshal(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files[uidOf(d)] = b
	}
	return append(errs, LintJSON(files)...)
}

// LintJSON is Lint on dashboards' JSON, by uid.
func LintJSON(files map[string][]byte) []error {
	var errs []error
	docs := map[string]map[string]any{}
	tags := map[string][]string{}
	for uid, b := range files {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", uid, err))
			continue
		}
		docs[uid] = m
		for _, t := range asSlice(m["tags"]) {
			tags[uid] = append(tags[uid], fmt.Sprint(t))
		}
	}
	uids := make([]string, 0, len(docs))
	for uid := range docs {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	for _, uid := range uids {
		l := &linter{uid: uid, doc: docs[uid], all: docs, tags: tags}
		l.run()
		errs = append(errs, l.errs...)
	}
	return errs
}

type linter struct {
	uid  string
	doc  map[string]any
	all  map[string]map[string]any
	tags map[string][]string
	vars []string
	errs []error
}

func (l *linter) errorf(where, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s: %s", l.uid, where, fmt.Sprintf(format, args...)))
}

func (l *linter) run() {
	if s, _ := l.doc["uid"].(string); s != l.uid || s == "" {
		l.errorf("dashboard", "uid %q, want %q", s, l.uid)
	}
	for _, k := range []string{"title", "description"} {
		if s, _ := l.doc[k].(string); strings.TrimSpace(s) == "" {
			l.errorf("dashboard", "no %s", k)
		}
	}
	if !slices.Contains(l.tags[l.uid], Tag) {
		l.errorf("dashboard", "no tag %q", Tag)
	}
	templating, _ := l.doc["templating"].(map[string]any)
	for _, v := range asSlice(templating["list"]) {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		l.vars = append(l.vars, name)
	}
	for _, v := range asSlice(templating["list"]) {
		vm, _ := v.(map[string]any)
		where := fmt.Sprintf("variable %v", vm["name"])
		if vm["type"] == "query" {
			l.datasource(where, vm["datasource"])
			if q, ok := vm["query"].(map[string]any); ok {
				l.apiguardQuery(where, q)
			}
		}
		l.varsUsed(where, vm["query"])
	}
	for i, link := range asSlice(l.doc["links"]) {
		l.link(fmt.Sprintf("dashboard link %d", i), link)
	}
	for _, p := range asSlice(l.doc["panels"]) {
		pm, _ := p.(map[string]any)
		if pm["type"] == "row" {
			l.varsUsed(fmt.Sprintf("row %v", pm["title"]), pm["title"])
			continue
		}
		l.panel(pm)
	}
}

func (l *linter) panel(p map[string]any) {
	title, _ := p["title"].(string)
	where := fmt.Sprintf("panel %q", title)
	if strings.TrimSpace(title) == "" {
		where = fmt.Sprintf("panel %v", p["id"])
		l.errorf(where, "no title")
	}
	if d, _ := p["description"].(string); strings.TrimSpace(d) == "" {
		l.errorf(where, "no description")
	}
	l.datasource(where, p["datasource"])
	targets := asSlice(p["targets"])
	if len(targets) == 0 {
		l.errorf(where, "no query")
	}
	for i, t := range targets {
		tm, _ := t.(map[string]any)
		tw := fmt.Sprintf("%s query %d", where, i)
		l.datasource(tw, tm["datasource"])
		if ds, _ := tm["datasource"].(map[string]any); ds["type"] == plugin.PluginID {
			l.apiguardQuery(tw, tm)
		}
	}
	l.varsUsed(where, p)
	fc, _ := p["fieldConfig"].(map[string]any)
	defaults, _ := fc["defaults"].(map[string]any)
	for i, link := range asSlice(defaults["links"]) {
		l.link(fmt.Sprintf("%s link %d", where, i), link)
	}
	for i, a := range asSlice(defaults["actions"]) {
		l.action(fmt.Sprintf("%s action %d", where, i), a)
	}
}

// datasource checks a data source reference: a provisioned uid of the
// right type, or a defined variable.
func (l *linter) datasource(where string, v any) {
	ds, ok := v.(map[string]any)
	if !ok {
		l.errorf(where, "no data source")
		return
	}
	uid, _ := ds["uid"].(string)
	typ, _ := ds["type"].(string)
	if strings.HasPrefix(uid, "$") {
		name := strings.Trim(strings.TrimPrefix(uid, "$"), "{}")
		if !slices.Contains(l.vars, name) {
			l.errorf(where, "data source variable %s is not defined", uid)
		}
		return
	}
	want := map[string]string{DatasourceUID: plugin.PluginID, PrometheusUID: PrometheusType}
	if w, ok := want[uid]; !ok || w != typ {
		l.errorf(where, "data source %s of type %s: want uid %s (%s) or %s (%s), as provisioned", uid, typ,
			DatasourceUID, plugin.PluginID, PrometheusUID, PrometheusType)
	}
}

// apiguardQuery checks one query of the apiguard data source.
func (l *linter) apiguardQuery(where string, q map[string]any) {
	qt, _ := q["queryType"].(string)
	model, ok := models[qt]
	if !ok || !slices.Contains(plugin.QueryTypeNames(), qt) {
		l.errorf(where, "query type %q is not one the plugin answers (%s)", qt, strings.Join(plugin.QueryTypeNames(), ", "))
		return
	}
	opts := map[string]any{}
	for k, v := range q {
		switch {
		case slices.Contains(grafanaFields, k):
		case k == "live":
			if !slices.Contains(liveTypes, qt) {
				l.errorf(where, "live on a %s query, which has no live channel", qt)
			}
		default:
			opts[k] = v
		}
		for _, name := range refs(v) {
			if !slices.Contains(interpolated, k) && !strings.HasPrefix(name, "__") {
				l.errorf(where, "variable $%s in %s, which the data source does not replace (only %s)", name, k,
					strings.Join(interpolated, ", "))
			}
		}
	}
	b, _ := json.Marshal(opts)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	m := reflect.New(reflect.TypeOf(model)).Interface()
	if err := dec.Decode(m); err != nil {
		l.errorf(where, "options of a %s query: %v", qt, err)
	}
}

// varsUsed checks that every variable v's strings use is defined.
func (l *linter) varsUsed(where string, v any) {
	for _, s := range strings_(v) {
		for _, name := range refs(s) {
			if !strings.HasPrefix(name, "__") && !slices.Contains(l.vars, name) {
				l.errorf(where, "variable $%s is not defined (in %q)", name, s)
			}
		}
	}
}

// link checks a dashboard or data link's target.
func (l *linter) link(where string, v any) {
	lm, _ := v.(map[string]any)
	if lm["type"] == "dashboards" {
		want := asSlice(lm["tags"])
		for uid, tags := range l.tags {
			if uid == l.uid {
				continue
			}
			match := true
			for _, t := range want {
				match = match && slices.Contains(tags, fmt.Sprint(t))
			}
			if match {
				return
			}
		}
		l.errorf(where, "tags %v match no other dashboard", want)
		return
	}
	u, _ := lm["url"].(string)
	if u == "" {
		l.errorf(where, "no url")
		return
	}
	if m := dashboardD.FindStringSubmatch(u); m != nil {
		if _, ok := l.all[m[1]]; !ok {
			l.errorf(where, "links to dashboard %s, which does not exist", m[1])
		}
		return
	}
	if !strings.HasPrefix(u, AppInvestigatePath) {
		l.errorf(where, "url %q is neither a dashboard (/d/<uid>) nor the app's Investigate page", u)
	}
}

// action checks a row action: a POST to one of the data source's actions.
func (l *linter) action(where string, v any) {
	am, _ := v.(map[string]any)
	f, _ := am["fetch"].(map[string]any)
	u, _ := f["url"].(string)
	name, ok := strings.CutPrefix(u, ActionsPath)
	if am["type"] != "fetch" || f["method"] != "POST" || !ok || !slices.Contains(actionNames, name) {
		l.errorf(where, "want a fetch POST to %s<%s>, got %v %v %q", ActionsPath, strings.Join(actionNames, "|"), am["type"], f["method"], u)
	}
	body, _ := f["body"].(string)
	var probe map[string]any
	if err := json.Unmarshal([]byte(dataField.ReplaceAllString(body, "x")), &probe); err != nil {
		l.errorf(where, "body is not JSON once filled in: %v", err)
	}
}

// refs returns the variable names v's strings reference.
func refs(v any) []string {
	var out []string
	for _, s := range strings_(v) {
		for _, m := range varRef.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1]+m[2]+m[3])
		}
	}
	return out
}

// strings_ returns every string inside v.
func strings_(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, strings_(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for _, e := range x {
			out = append(out, strings_(e)...)
		}
		return out
	}
	return nil
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// PanelQueries is one panel of the apiguard data source as the
// integration test runs it: its queries as Grafana sends them, and the
// fields its links, actions, overrides, transformations and reductions
// name, which its frames must have.
type PanelQueries struct {
	Dashboard, Title string
	Queries          []map[string]any
	// Fields are the fields the panel names; FrameIndex, for a table
	// showing one frame of several, the frame they must be in (-1: any).
	Fields     []string
	FrameIndex int
}

// ApiguardPanels returns every panel of dashboards' JSON (by uid) whose
// queries go to the apiguard data source.
func ApiguardPanels(files map[string][]byte) ([]PanelQueries, error) {
	var out []PanelQueries
	uids := make([]string, 0, len(files))
	for uid := range files {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	for _, uid := range uids {
		var d struct {
			Panels []map[string]any `json:"panels"`
		}
		if err := json.Unmarshal(files[uid], &d); err != nil {
			return nil, fmt.Errorf("%s: %w", uid, err)
		}
		for _, p := range d.Panels {
			ds, _ := p["datasource"].(map[string]any)
			if ds["type"] != plugin.PluginID {
				continue
			}
			pq := PanelQueries{Dashboard: uid, FrameIndex: -1}
			pq.Title, _ = p["title"].(string)
			for _, t := range asSlice(p["targets"]) {
				tm, _ := t.(map[string]any)
				pq.Queries = append(pq.Queries, tm)
			}
			if opts, _ := p["options"].(map[string]any); opts != nil {
				if fi, ok := opts["frameIndex"].(float64); ok && fi > 0 {
					pq.FrameIndex = int(fi)
				}
			}
			pq.Fields = namedFields(p)
			out = append(out, pq)
		}
	}
	return out, nil
}

// namedFields returns the fields a panel's configuration names.
func namedFields(p map[string]any) []string {
	set := map[string]bool{}
	for _, s := range strings_(p["fieldConfig"]) {
		for _, m := range dataField.FindAllStringSubmatch(s, -1) {
			set[m[1]] = true
		}
	}
	fc, _ := p["fieldConfig"].(map[string]any)
	for _, o := range asSlice(fc["overrides"]) {
		om, _ := o.(map[string]any)
		if m, _ := om["matcher"].(map[string]any); m["id"] == "byName" {
			set[fmt.Sprint(m["options"])] = true
		}
	}
	opts, _ := p["options"].(map[string]any)
	if r, _ := opts["reduceOptions"].(map[string]any); r != nil {
		if m := fieldRegex.FindStringSubmatch(fmt.Sprint(r["fields"])); m != nil {
			set[m[1]] = true
		}
	}
	for _, t := range asSlice(p["transformations"]) {
		tm, _ := t.(map[string]any)
		o, _ := tm["options"].(map[string]any)
		switch tm["id"] {
		case "groupBy":
			f, _ := o["fields"].(map[string]any)
			for k := range f {
				set[k] = true
			}
		case "partitionByValues":
			for _, f := range asSlice(o["fields"]) {
				set[fmt.Sprint(f)] = true
			}
		case "filterFieldsByName":
			inc, _ := o["include"].(map[string]any)
			for _, f := range asSlice(inc["names"]) {
				set[fmt.Sprint(f)] = true
			}
		case "filterByValue":
			for _, f := range asSlice(o["filters"]) {
				fm, _ := f.(map[string]any)
				set[fmt.Sprint(fm["fieldName"])] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
