package plugin_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		secure     map[string]string
		bad        string // the JSON key an error names, "" for none
	}{
		{"defaults", ``, nil, ""},
		{"full", `{"natsUrl":"nats://n1:4222,nats://n2:4222","natsUser":"grafana","clickhouseAddr":"ch:9000","clickhouseDatabase":"guard","clickhouseUser":"reader","timeout":"2s","extra":1}`,
			map[string]string{plugin.SecureNATSPassword: "nats-hunter2", plugin.SecureClickHousePassword: "ch-hunter2"}, ""},
		{"credentials in the URL", `{"natsUrl":"nats://u:p@n1:4222"}`, nil, "natsUrl"},
		{"bad scheme", `{"natsUrl":"http://n1:4222"}`, nil, "natsUrl"},
		{"bad address", `{"clickhouseAddr":"ch"}`, nil, "clickhouseAddr"},
		{"bad database", `{"clickhouseDatabase":"x; DROP"}`, nil, "clickhouseDatabase"},
		{"bad timeout", `{"timeout":"1h"}`, nil, "timeout"},
		{"password and token", ``, map[string]string{plugin.SecureNATSPassword: "pw-hunter2", plugin.SecureNATSToken: "tok-hunter2"}, "natsToken"},
		{"malformed", `{"natsUrl":`, nil, "decoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := plugin.ParseSettings(backend.DataSourceInstanceSettings{JSONData: []byte(tc.json), DecryptedSecureJSONData: tc.secure})
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("ParseSettings: %v, want an error naming %s", err, tc.bad)
				}
				for _, v := range tc.secure {
					if strings.Contains(err.Error(), v) {
						t.Errorf("error %q shows a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Secrets never leave through JSON, %v or %+v.
			b, _ := json.Marshal(s)
			shown := string(b) + fmt.Sprintf("%v %+v %#v", s, s, s)
			for _, v := range tc.secure {
				if strings.Contains(shown, v) {
					t.Errorf("settings show the secret %q: %s", v, shown)
				}
			}
			if tc.secure != nil && s.ClickHousePassword.Reveal() != tc.secure[plugin.SecureClickHousePassword] {
				t.Error("the ClickHouse password was not read from the secure data")
			}
		})
	}
}
