package plugin

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestFrontendQueryTypes holds the frontend's list of query types and its
// options per type (frontend/src/datasource/types.ts) equal to
// QueryTypeNames, so that a type the backend answers can be chosen in the
// query editor and the editor offers none the backend refuses.
func TestFrontendQueryTypes(t *testing.T) {
	b, err := os.ReadFile("frontend/src/datasource/types.ts")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	block := func(start, end string) string {
		t.Helper()
		i := strings.Index(src, start)
		if i < 0 {
			t.Fatalf("types.ts: no %q", start)
		}
		j := strings.Index(src[i:], end)
		if j < 0 {
			t.Fatalf("types.ts: %q not closed by %q", start, end)
		}
		return src[i+len(start) : i+j]
	}
	values := func(re, text string) []string {
		var out []string
		for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(text, -1) {
			out = append(out, m[1])
		}
		slices.Sort(out)
		return out
	}
	want := QueryTypeNames()
	if got := values(`:\s*'([a-z_]+)'`, block("export const QueryTypes = {", "} as const;")); !slices.Equal(got, want) {
		t.Errorf("types.ts QueryTypes %v, want QueryTypeNames %v", got, want)
	}
	if got := values(`(?m)^\s*([a-z_]+):\s*\[`, block("export const queryOptions: Record<QueryType, QueryOption[]> = {", "\n};")); !slices.Equal(got, want) {
		t.Errorf("types.ts queryOptions types %v, want QueryTypeNames %v", got, want)
	}
}
