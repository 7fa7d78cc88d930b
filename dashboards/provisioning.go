package dashboards

// Paths of the provisioning files, relative to dashboards/, and where the
// Grafana container mounts them.
const (
	ProvisionedDatasources = "provisioning/datasources/apiguard.yaml"
	ProvisionedDashboards  = "provisioning/dashboards/apiguard.yaml"
	ProvisionedPlugins     = "provisioning/plugins/apiguard.yaml"
	// DashboardsPath is where the dashboards provider reads the JSON
	// files (dashboards/json mounted there).
	DashboardsPath = "/var/lib/grafana/dashboards/apiguard"
)

// EnvPlaceholder is one ${…} of the data sources' provisioning file,
// which Grafana replaces from its environment at start (an unset one
// becomes empty).
type EnvPlaceholder struct {
	Name string
	// Field is the data source setting it fills (jsonData.…,
	// secureJsonData.… or url).
	Field string
	// Required: empty is refused (the data source does not load).
	Required bool
}

// EnvPlaceholders are every placeholder of ProvisionedDatasources.
var EnvPlaceholders = []EnvPlaceholder{
	{"APIGUARD_NATS_URL", "apiguard jsonData.natsUrl", true},
	{"APIGUARD_NATS_USER", "apiguard jsonData.natsUser", false},
	{"APIGUARD_NATS_PASSWORD", "apiguard secureJsonData.natsPassword", false},
	{"APIGUARD_NATS_TOKEN", "apiguard secureJsonData.natsToken", false},
	{"APIGUARD_CLICKHOUSE_ADDR", "apiguard jsonData.clickhouseAddr", true},
	{"APIGUARD_CLICKHOUSE_DATABASE", "apiguard jsonData.clickhouseDatabase", true},
	{"APIGUARD_CLICKHOUSE_USER", "apiguard jsonData.clickhouseUser", true},
	{"APIGUARD_CLICKHOUSE_PASSWORD", "apiguard secureJsonData.clickhousePassword", false},
	{"PROMETHEUS_URL", "prometheus url", true},
}
