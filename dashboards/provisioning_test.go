package dashboards

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

// Grafana's provisioning formats, the fields we use (an unknown key in
// our files is an error, so a typo cannot pass).
type (
	datasourcesFile struct {
		APIVersion  int                     `yaml:"apiVersion"`
		Datasources []provisionedDatasource `yaml:"datasources"`
	}
	provisionedDatasource struct {
		Name           string            `yaml:"name"`
		UID            string            `yaml:"uid"`
		Type           string            `yaml:"type"`
		Access         string            `yaml:"access"`
		URL            string            `yaml:"url"`
		IsDefault      bool              `yaml:"isDefault"`
		Editable       bool              `yaml:"editable"`
		JSONData       map[string]string `yaml:"jsonData"`
		SecureJSONData map[string]string `yaml:"secureJsonData"`
	}
	dashboardsFile struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name                  string `yaml:"name"`
			OrgID                 int    `yaml:"orgId"`
			Folder                string `yaml:"folder"`
			FolderUID             string `yaml:"folderUid"`
			Type                  string `yaml:"type"`
			DisableDeletion       bool   `yaml:"disableDeletion"`
			AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `yaml:"path"`
				FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	pluginsFile struct {
		APIVersion int `yaml:"apiVersion"`
		Apps       []struct {
			Type     string `yaml:"type"`
			OrgID    int    `yaml:"org_id"`
			Disabled bool   `yaml:"disabled"`
		} `yaml:"apps"`
	}
)

// decodeYAML reads path into v, refusing unknown keys.
func decodeYAML(t *testing.T, path string, v any) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

var placeholder = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

// TestProvisionedDatasources: the two data sources with the uids the
// dashboards name, the apiguard one's settings exactly the plugin's
// (jsonData keys from plugin.Settings, secure keys from its constants),
// every placeholder listed in EnvPlaceholders, and the file, once filled
// in as Grafana does, accepted by the plugin's ParseSettings.
func TestProvisionedDatasources(t *testing.T) {
	var f datasourcesFile
	b := decodeYAML(t, ProvisionedDatasources, &f)
	byUID := map[string]provisionedDatasource{}
	for _, d := range f.Datasources {
		byUID[d.UID] = d
	}
	ag, ok := byUID[DatasourceUID]
	if !ok || ag.Type != plugin.PluginID {
		t.Fatalf("no data source %s of type %s: %+v", DatasourceUID, plugin.PluginID, f.Datasources)
	}
	if p, ok := byUID[PrometheusUID]; !ok || p.Type != PrometheusType || p.URL != "${PROMETHEUS_URL}" {
		t.Errorf("prometheus data source: %+v", p)
	}
	if len(f.Datasources) != 2 {
		t.Errorf("%d data sources, want 2", len(f.Datasources))
	}
	var jsonKeys []string
	st := reflect.TypeOf(plugin.Settings{})
	for i := range st.NumField() {
		if k, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ","); k != "-" {
			jsonKeys = append(jsonKeys, k)
		}
	}
	for k := range ag.JSONData {
		if !slices.Contains(jsonKeys, k) {
			t.Errorf("jsonData.%s is not a setting of the plugin (%v)", k, jsonKeys)
		}
	}
	for _, k := range jsonKeys {
		if _, ok := ag.JSONData[k]; !ok {
			t.Errorf("jsonData.%s not provisioned", k)
		}
	}
	secure := []string{plugin.SecureNATSPassword, plugin.SecureNATSToken, plugin.SecureClickHousePassword}
	for k := range ag.SecureJSONData {
		if !slices.Contains(secure, k) {
			t.Errorf("secureJsonData.%s is not a secure setting of the plugin (%v)", k, secure)
		}
	}

	// Placeholders: exactly EnvPlaceholders.
	var found, listed []string
	for _, m := range placeholder.FindAllStringSubmatch(string(b), -1) {
		found = append(found, m[1])
	}
	for _, p := range EnvPlaceholders {
		listed = append(listed, p.Name)
	}
	sort.Strings(found)
	sort.Strings(listed)
	if !slices.Equal(found, listed) {
		t.Errorf("placeholders in the file %v, EnvPlaceholders %v", found, listed)
	}

	// Filled in as Grafana does, the plugin takes the settings; with a
	// required placeholder empty, it does not.
	env := map[string]string{"APIGUARD_NATS_URL": "nats://nats:4222", "APIGUARD_CLICKHOUSE_ADDR": "clickhouse:9000",
		"APIGUARD_CLICKHOUSE_DATABASE": "apiguard", "APIGUARD_CLICKHOUSE_USER": "grafana", "APIGUARD_CLICKHOUSE_PASSWORD": "pw",
		"PROMETHEUS_URL": "http://prometheus:9090"}
	settings := func(env map[string]string) backend.DataSourceInstanceSettings {
		var filled datasourcesFile
		if err := yaml.Unmarshal([]byte(os.Expand(string(b), func(k string) string { return env[k] })), &filled); err != nil {
			t.Fatal(err)
		}
		for _, d := range filled.Datasources {
			if d.UID == DatasourceUID {
				js, _ := json.Marshal(d.JSONData)
				return backend.DataSourceInstanceSettings{UID: d.UID, JSONData: js, DecryptedSecureJSONData: d.SecureJSONData}
			}
		}
		t.Fatal("no apiguard data source")
		return backend.DataSourceInstanceSettings{}
	}
	cfg, err := plugin.ParseSettings(settings(env))
	if err != nil {
		t.Fatalf("the plugin refuses the provisioned settings: %v", err)
	}
	if cfg.NATSURL != "nats://nats:4222" || cfg.ClickHouseAddr != "clickhouse:9000" || cfg.ClickHousePassword.Reveal() != "pw" {
		t.Errorf("settings: %+v", cfg)
	}
	for _, p := range EnvPlaceholders {
		if !p.Required || !strings.HasPrefix(p.Field, "apiguard ") || p.Name == "APIGUARD_CLICKHOUSE_USER" {
			continue
		}
		without := map[string]string{}
		for k, v := range env {
			if k != p.Name {
				without[k] = v
			}
		}
		if _, err := plugin.ParseSettings(settings(without)); err == nil {
			t.Errorf("%s empty: the plugin takes the settings, so it is not required", p.Name)
		}
	}
}

// TestProvisionedDashboardsAndApp: the file provider reads the folder
// the stack mounts dashboards/json into, and the app provisioned is the
// plugin's app id.
func TestProvisionedDashboardsAndApp(t *testing.T) {
	var d dashboardsFile
	decodeYAML(t, ProvisionedDashboards, &d)
	if len(d.Providers) != 1 || d.Providers[0].Type != "file" || d.Providers[0].Options.Path != DashboardsPath {
		t.Errorf("dashboard provider: %+v", d.Providers)
	}
	var p pluginsFile
	decodeYAML(t, ProvisionedPlugins, &p)
	var app struct {
		ID string `json:"id"`
	}
	b, err := os.ReadFile("plugin/frontend/src/plugin.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &app); err != nil {
		t.Fatal(err)
	}
	if len(p.Apps) != 1 || p.Apps[0].Type != app.ID || p.Apps[0].Disabled {
		t.Errorf("apps: %+v, want %s enabled", p.Apps, app.ID)
	}
}
