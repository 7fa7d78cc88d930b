package proxy

import (
	"fmt"
	"strings"
)

// ResponsesConfig shapes the upstream's answers. Hop-by-hop headers are
// always removed (net/http/httputil does it); StripHeaders removes
// headers that tell an attacker what runs behind the proxy. Any header
// carrying an injected secret is removed too, whatever its name.
type ResponsesConfig struct {
	StripHeaders []string `yaml:"strip_headers"`
}

// DefaultResponsesConfig strips the usual server banners.
func DefaultResponsesConfig() ResponsesConfig {
	return ResponsesConfig{StripHeaders: []string{"Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version"}}
}

// Validate reports the first bad field by its config key.
func (c ResponsesConfig) Validate() error {
	for i, h := range c.StripHeaders {
		if h == "" || strings.ContainsAny(h, " :\r\n") {
			return fmt.Errorf("proxy.responses.strip_headers[%d]: %q, want a header name", i, h)
		}
	}
	return nil
}
