package proxy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTemplater(t *testing.T) {
	tp, err := NewTemplater([]string{"POST /orders/{id}", "GET /users/{user}/orders/{order}", "* /health", "GET /orders/export"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path, want string
	}{
		{"POST", "/orders/123", "POST /orders/{id}"},
		{"POST", "/orders/anything", "POST /orders/{id}"},
		{"GET", "/users/u1/orders/o9", "GET /users/{user}/orders/{order}"},
		{"DELETE", "/health", "* /health"},
		{"GET", "/orders/export", "GET /orders/export"},
		// Unconfigured: id-like segments become {id}.
		{"GET", "/orders/123", "GET /orders/{id}"},
		{"GET", "/items/550e8400-e29b-41d4-a716-446655440000/reviews", "GET /items/{id}/reviews"},
		{"GET", "/blobs/deadbeef42", "GET /blobs/{id}"},
		{"GET", "/t/aGVsbG8gd29ybGQgdG9rZW4x", "GET /t/{id}"},
		{"GET", "/search", "GET /search"},
		{"GET", "/v2/products", "GET /v2/products"},
		{"GET", "/cafe", "GET /cafe"},     // hex letters but a word
		{"GET", "/facade", "GET /facade"}, // short hex word, no digit
		{"GET", "/", "GET /"},
		{"GET", "", "GET /"},
		{"GET", "/a/b/c/d/e/f/g/h/i/j", "GET /a/b/c/d/e/f/g/h/{rest}"},
		{"GET", "/files/report%20q1", "GET /files/report%20q1"},
		// Decoded bytes that are not UTF-8 are written as %XX, so the API
		// is valid text; the event's path keeps what the client sent.
		{"GET", "/scripts/..\xc0\xaf../winnt/system32/cmd.exe", "GET /scripts/..%C0%AF../winnt/system32/cmd.exe"},
		{"GET", "/caf\xe9/menü", "GET /caf%E9/menü"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			if got := tp.API(tt.method, tt.path); got != tt.want {
				t.Errorf("API(%s %s) = %q, want %q", tt.method, tt.path, got, tt.want)
			}
		})
	}
}

func TestTemplaterRejects(t *testing.T) {
	for _, r := range []string{"/orders", "GET orders", "GET /a/{}", "GET /a/x{id}", ""} {
		if _, err := NewTemplater([]string{r}); err == nil || !strings.Contains(err.Error(), "proxy.routes[0]") {
			t.Errorf("NewTemplater(%q) = %v, want an error naming proxy.routes[0]", r, err)
		}
	}
}

// FuzzTemplater: any path gives a template that starts with the method and
// a slash, is valid UTF-8 when the method is, and templating is idempotent
// on unconfigured paths.
func FuzzTemplater(f *testing.F) {
	for _, s := range []string{"/orders/123", "/a//b", "/x/550e8400-e29b-41d4-a716-446655440000", "", "/{id}", "/%00", "/a/\xc0\xaf/b"} {
		f.Add("GET", s)
	}
	tp, _ := NewTemplater([]string{"POST /orders/{id}"})
	f.Fuzz(func(t *testing.T, method, path string) {
		got := tp.API(method, path)
		if !strings.HasPrefix(got, method+" /") {
			t.Fatalf("API(%q, %q) = %q", method, path, got)
		}
		if utf8.ValidString(method) && !utf8.ValidString(got) {
			t.Fatalf("API(%q, %q) = %q is not valid UTF-8", method, path, got)
		}
		again := tp.API(method, strings.TrimPrefix(got, method+" "))
		if again != got && !strings.Contains(got, "{rest}") {
			t.Fatalf("not idempotent: %q then %q", got, again)
		}
	})
}
