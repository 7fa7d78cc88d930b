package secret_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/internal/secret"
)

type holder struct {
	Password secret.String `yaml:"password" json:"password"`
	URL      secret.URL    `yaml:"url" json:"url"`
}

const (
	password = "hunter2-sentinel"
	user     = "alice-sentinel"
	token    = "tok-sentinel"
)

func sample() holder {
	return holder{Password: password, URL: secret.URL("nats://" + user + ":" + password + "@nats-1:4222,nats://nats-2:4222?token=" + token)}
}

// TestNothingPrintsTheValue prints a secret every way the code base does
// and checks the value never shows.
func TestNothingPrintsTheValue(t *testing.T) {
	h := sample()
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-30q", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, h), fmt.Sprintf(verb, h.Password), fmt.Sprintf(verb, h.URL),
			fmt.Sprintf(verb, &h), fmt.Sprintf(verb, []secret.String{h.Password}))
	}
	outs = append(outs, fmt.Sprint(h), fmt.Sprintln(h.Password, h.URL), h.Password.String(), h.URL.String(),
		h.Password.GoString(), h.URL.GoString(), fmt.Errorf("wrapped: %w: %v", fmt.Errorf("%s", h.URL), h).Error())
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := h.Password.MarshalText()
	ut, _ := h.URL.MarshalText()
	outs = append(outs, string(j), string(y), string(pt), string(ut))
	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(newHandler(&b))
		log.Info("config", "password", h.Password, "url", h.URL, "holder", h, "ptr", &h)
		log.With("password", h.Password).Info("with")
		outs = append(outs, b.String())
	}
	for _, out := range outs {
		for _, s := range []string{password, user, token} {
			if strings.Contains(out, s) {
				t.Errorf("%q shows %q", out, s)
			}
		}
	}
	if !strings.Contains(string(y), "password: <redacted>") {
		t.Errorf("yaml:\n%s", y)
	}
}

func TestDecodesAndReveals(t *testing.T) {
	var h holder
	if err := yaml.Unmarshal([]byte("password: "+password+"\nurl: https://"+user+":"+password+"@h/x\n"), &h); err != nil {
		t.Fatal(err)
	}
	if h.Password.Reveal() != password || h.URL.Reveal() != "https://"+user+":"+password+"@h/x" {
		t.Errorf("yaml decoded %q %q", h.Password.Reveal(), h.URL.Reveal())
	}
	h = holder{}
	if err := json.Unmarshal([]byte(`{"password":"`+password+`","url":"http://h"}`), &h); err != nil {
		t.Fatal(err)
	}
	if h.Password.Reveal() != password || h.URL.Reveal() != "http://h" {
		t.Errorf("json decoded %q %q", h.Password.Reveal(), h.URL.Reveal())
	}
}

func TestURLRedaction(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://u:p@a:4222, nats://tok@b:4222", "nats://<redacted>@a:4222,nats://<redacted>@b:4222"},
		{"https://am.example/base/?token=abc&x=1&flag", "https://am.example/base/?token=<redacted>&x=<redacted>&<redacted>"},
		{"https://h/p#frag", "https://h/p#<redacted>"},
		{"u:p@host:4222", "<redacted>"},
		{"not a url", "<redacted>"},
		{"mailto:someone@example.com", "<redacted>"},
		{"http://[::1", "<redacted>"},
	} {
		if got := secret.URL(tc.in).String(); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := secret.String("").String(); got != "" {
		t.Errorf("empty String prints %q", got)
	}
	if got := fmt.Sprintf("%q", secret.String("x")); got != `"<redacted>"` {
		t.Errorf("%%q = %s", got)
	}
}

func TestHasCredentials(t *testing.T) {
	for in, want := range map[string]bool{
		"https://h/x":         false,
		"https://u@h/x":       true,
		"https://u:p@h/x":     true,
		"http://[::1%zz@h":    true,
		"https://h/x?a=b@c":   false,
		"":                    false,
		"http://127.0.0.1:80": false,
	} {
		if got := secret.HasCredentials(in); got != want {
			t.Errorf("HasCredentials(%q) = %v, want %v", in, got, want)
		}
	}
}
