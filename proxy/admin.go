package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// AdminConfig configures the admin listener: health, readiness, metrics
// and reload. Off a loopback address it requires a bearer token.
type AdminConfig struct {
	// Listen is the admin address; "" turns the listener off.
	Listen string `yaml:"listen"`
	// TokenEnv names the environment variable holding the admin token.
	TokenEnv string `yaml:"token_env"`
}

// DefaultAdminConfig listens on loopback.
func DefaultAdminConfig() AdminConfig {
	return AdminConfig{Listen: "127.0.0.1:9465", TokenEnv: "APIGUARD_ADMIN_TOKEN"}
}

// Validate reports the first bad field by its config key. token is the
// value of TokenEnv.
func (c AdminConfig) Validate(token string) error {
	if c.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen: %q: %w", c.Listen, err)
	}
	if !isLoopback(host) && len(token) < 16 {
		return fmt.Errorf("admin.listen: %q is not loopback, so $%s must hold a token of at least 16 characters", c.Listen, c.TokenEnv)
	}
	return nil
}

// Admin serves the admin endpoints:
//
//	GET  /healthz  200 while the process runs
//	GET  /readyz   200 when Ready says so, else 503 with the reason
//	GET  /metrics  Metrics, when set
//	POST /reload   Reload; 200 with the outcome, 422 if the new config was refused
//
// With Token set every request needs "Authorization: Bearer <token>".
type Admin struct {
	Token   string
	Ready   func() error
	Reload  func(ctx context.Context) error
	Metrics http.Handler
}

// Handler returns the admin mux.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if a.Ready != nil {
			if err := a.Ready(); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if a.Metrics != nil {
		mux.Handle("GET /metrics", a.Metrics)
	}
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		if a.Reload == nil {
			writeJSON(w, http.StatusNotImplemented, map[string]string{"status": "reload not available"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := a.Reload(ctx); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"status": "kept the running config", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
	})
	if a.Token == "" {
		return mux
	}
	want := sha256.Sum256([]byte(a.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("Www-Authenticate", `Bearer realm="apiguard-admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"status": "unauthorized"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
