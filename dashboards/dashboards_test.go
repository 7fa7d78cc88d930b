package dashboards

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

// generated returns every dashboard's JSON by uid.
func generated(t *testing.T) map[string][]byte {
	t.Helper()
	ds, err := All()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, d := range ds {
		b, err := Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		out[uidOf(d)] = b
	}
	return out
}

// TestFiveDashboards: the five dashboards, each with its fixed uid.
func TestFiveDashboards(t *testing.T) {
	files := generated(t)
	for _, uid := range []string{UIDOverview, UIDThreats, UIDAPI, UIDInvestigate, UIDPipeline} {
		if files[uid] == nil {
			t.Errorf("no dashboard %s", uid)
		}
	}
	if len(files) != 5 {
		t.Errorf("%d dashboards, want 5", len(files))
	}
}

// TestStrictRoundTrip: every dashboard decodes with the SDK's strict
// decoder (an unknown field anywhere, a missing required one, a query
// the SDK or our Query type does not know is an error) and encodes back
// to the same bytes.
func TestStrictRoundTrip(t *testing.T) {
	for uid, b := range generated(t) {
		if err := CheckStrict(b); err != nil {
			t.Errorf("%s: strict decoding: %v", uid, err)
		}
		d, err := Decode(b)
		if err != nil {
			t.Errorf("%s: decoding: %v", uid, err)
			continue
		}
		again, err := Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Errorf("%s: decoding and encoding again changes the JSON", uid)
		}
		for _, p := range d.Panels {
			if p.Panel == nil {
				continue
			}
			for _, q := range p.Panel.Targets {
				switch q.(type) {
				case Query, *Query:
				default:
					if q.DataqueryType() != PrometheusType {
						t.Errorf("%s: panel %q: a query decoded as %T, not as an apiguard or Prometheus query", uid, deref(p.Panel.Title), q)
					}
				}
			}
		}
	}
}

// TestStrictDecodingRefusesUnknownFields: the strict decoding the round
// trip relies on does refuse what it does not know, in a panel and in an
// apiguard query.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	b := generated(t)[UIDThreats]
	for name, edit := range map[string]func(m map[string]any){
		"panel field": func(m map[string]any) { panel(m, 1)["colour"] = "red" },
		"query field": func(m map[string]any) { target(m, 1, 0)["principalKinds"] = "ip" },
		"query type":  func(m map[string]any) { target(m, 1, 0)["queryType"] = "anomaly_list" },
		"option":      func(m map[string]any) { panel(m, 2)["options"].(map[string]any)["rowHeight"] = 2 },
		"field config": func(m map[string]any) {
			panel(m, 1)["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["custom"].(map[string]any)["glow"] = true
		},
		"link field": func(m map[string]any) { links(m, 2)[0].(map[string]any)["href"] = "/" },
	} {
		t.Run(name, func(t *testing.T) {
			if err := CheckStrict(edited(t, b, edit)); err == nil {
				t.Error("strict decoding accepted it")
			}
		})
	}
}

// TestCommittedJSONIsCurrent: dashboards/json holds exactly what the
// generator writes (`make dashboards` regenerates it).
func TestCommittedJSONIsCurrent(t *testing.T) {
	files := generated(t)
	paths, _ := filepath.Glob("json/*.json")
	if len(paths) != len(files) {
		t.Errorf("dashboards/json has %d files, the generator writes %d: run make dashboards", len(paths), len(files))
	}
	for uid, b := range files {
		got, err := os.ReadFile(filepath.Join("json", uid+".json"))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("dashboards/json/%s.json is stale or missing: run make dashboards", uid)
		}
	}
}

// TestLintClean: the dashboards keep every house rule.
func TestLintClean(t *testing.T) {
	for _, err := range LintJSON(generated(t)) {
		t.Error(err)
	}
}

// TestLintCatches: each rule of the lint catches its breach.
func TestLintCatches(t *testing.T) {
	files := generated(t)
	cases := []struct {
		name, uid string
		edit      func(m map[string]any)
		want      string
	}{
		{"panel without description", UIDOverview, func(m map[string]any) { delete(panel(m, 1), "description") }, "no description"},
		{"panel without title", UIDOverview, func(m map[string]any) { panel(m, 1)["title"] = " " }, "no title"},
		{"unprovisioned data source", UIDOverview, func(m map[string]any) {
			panel(m, 1)["datasource"] = map[string]any{"type": plugin.PluginID, "uid": "P1809F7CD0C75ACF3"}
		}, "as provisioned"},
		{"undefined data source variable", UIDOverview, func(m map[string]any) {
			target(m, 1, 0)["datasource"] = map[string]any{"type": plugin.PluginID, "uid": "${ds}"}
		}, "data source variable ${ds} is not defined"},
		{"unknown query type", UIDOverview, func(m map[string]any) { target(m, 1, 0)["queryType"] = "requests" }, `query type "requests"`},
		{"option of another type", UIDOverview, func(m map[string]any) { target(m, 1, 0)["detector"] = "volumetric" }, `unknown field "detector"`},
		{"option of the wrong JSON type", UIDOverview, func(m map[string]any) { target(m, 1, 0)["limit"] = "20" }, "options of a series query"},
		{"live without a channel", UIDOverview, func(m map[string]any) { target(m, 1, 0)["live"] = true }, "live on a series query"},
		{"variable not replaced", UIDThreats, func(m map[string]any) { target(m, 1, 0)["minSeverity"] = "$severity" }, "does not replace"},
		{"undefined variable", UIDOverview, func(m map[string]any) { target(m, 1, 0)["api"] = "$service" }, "variable $service is not defined"},
		{"undefined variable in a link", UIDThreats, func(m map[string]any) {
			links(m, 2)[0].(map[string]any)["url"] = "/d/apiguard-investigate/x?var-principal=${who}"
		}, "variable $who is not defined"},
		{"link to no dashboard", UIDThreats, func(m map[string]any) {
			links(m, 2)[0].(map[string]any)["url"] = "/d/apiguard-nope/x"
		}, "dashboard apiguard-nope, which does not exist"},
		{"link elsewhere", UIDThreats, func(m map[string]any) {
			links(m, 2)[0].(map[string]any)["url"] = "https://example.com/"
		}, "neither a dashboard"},
		{"dashboards link matching nothing", UIDOverview, func(m map[string]any) {
			m["links"].([]any)[0].(map[string]any)["tags"] = []any{"nothing"}
		}, "match no other dashboard"},
		{"action to another resource", UIDThreats, func(m map[string]any) {
			fc := panel(m, 2)["fieldConfig"].(map[string]any)["defaults"].(map[string]any)
			fc["actions"].([]any)[0].(map[string]any)["fetch"].(map[string]any)["url"] = "/api/datasources/uid/apiguard/resources/actions/delete"
		}, "want a fetch POST"},
		{"dashboard without the tag", UIDAPI, func(m map[string]any) { m["tags"] = []any{} }, `no tag "apiguard"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mutated := map[string][]byte{}
			for k, v := range files {
				mutated[k] = v
			}
			mutated[c.uid] = edited(t, files[c.uid], c.edit)
			errs := LintJSON(mutated)
			for _, err := range errs {
				if strings.Contains(err.Error(), c.want) {
					return
				}
			}
			t.Errorf("no lint error containing %q; got %v", c.want, errs)
		})
	}
}

// TestPrincipalsLinkToInvestigate: every table of principals (top
// principals, anomalies, actions, entries, principal lists) links to
// Investigate principal with the principal variable set, and every
// dashboard links to the others.
func TestPrincipalsLinkToInvestigate(t *testing.T) {
	principalTypes := []string{plugin.QueryTypeTopPrincipals, plugin.QueryTypeAnomalies, plugin.QueryTypeAudit, plugin.QueryTypeEnforcement}
	for uid, b := range generated(t) {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if ls := asSlice(m["links"]); len(ls) == 0 || ls[0].(map[string]any)["type"] != "dashboards" {
			t.Errorf("%s: no link to the other dashboards", uid)
		}
		for _, p := range asSlice(m["panels"]) {
			pm := p.(map[string]any)
			if pm["type"] != "table" || uid == UIDInvestigate {
				continue
			}
			for _, tg := range asSlice(pm["targets"]) {
				qt, _ := tg.(map[string]any)["queryType"].(string)
				isPrincipals := slices.Contains(principalTypes, qt) || tg.(map[string]any)["variable"] == plugin.VariablePrincipal
				if !isPrincipals || strings.Contains(fmtTitle(pm), "by actor") || strings.Contains(fmtTitle(pm), "Detectors") ||
					strings.Contains(fmtTitle(pm), "by detector") || strings.Contains(fmtTitle(pm), "Attack kinds") {
					continue // aggregates: no principal in the rows
				}
				fc, _ := pm["fieldConfig"].(map[string]any)
				d, _ := fc["defaults"].(map[string]any)
				found := false
				for _, l := range asSlice(d["links"]) {
					u, _ := l.(map[string]any)["url"].(string)
					found = found || strings.HasPrefix(u, "/d/"+UIDInvestigate+"/") && strings.Contains(u, "var-principal=")
				}
				if !found {
					t.Errorf("%s: panel %q shows principals without a link to Investigate principal", uid, fmtTitle(pm))
				}
			}
		}
	}
}

func fmtTitle(p map[string]any) string { s, _ := p["title"].(string); return s }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// edited decodes b, applies edit and encodes it again.
func edited(t *testing.T, b []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// panel is the i-th entry of a dashboard's panels (rows count).
func panel(m map[string]any, i int) map[string]any { return m["panels"].([]any)[i].(map[string]any) }

func target(m map[string]any, i, j int) map[string]any {
	return panel(m, i)["targets"].([]any)[j].(map[string]any)
}

func links(m map[string]any, i int) []any {
	return panel(m, i)["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["links"].([]any)
}

// TestLintKnowsEveryQueryType: the lint has a model for every query type
// the plugin answers (QueryTypeNames, enforcement included) and for no
// other, so no dashboard query of a served type is refused and none of an
// unknown type passes.
func TestLintKnowsEveryQueryType(t *testing.T) {
	var got []string
	for qt := range models {
		got = append(got, qt)
	}
	slices.Sort(got)
	if want := plugin.QueryTypeNames(); !slices.Equal(got, want) {
		t.Errorf("lint models %v, want QueryTypeNames %v", got, want)
	}
	for _, qt := range plugin.QueryTypeNames() {
		if err := Q(qt).Validate(); err != nil {
			t.Errorf("query type %s: %v", qt, err)
		}
	}
	if err := Q("enforcements").Validate(); err == nil || !strings.Contains(err.Error(), "enforcement, inventory") {
		t.Errorf("unknown query type: %v, want an error listing every type", err)
	}
}
