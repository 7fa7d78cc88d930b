package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/proxy/auth"
)

// secretFixture is a config with a distinct sentinel in every place a
// secret can be configured: the secret fields, the variables the *_env
// fields name, APIGUARD_CLICKHOUSE_PASSWORD and the vault. Its NATS
// requires the sentinel user and password.
type secretFixture struct {
	dir      string
	full     string // every section, ClickHouse on a closed port
	noStore  string // the same without ClickHouse
	natsAddr string
	upstream *httptest.Server
	injected chan string // the Authorization header the upstream saw
	// sentinels are the secret values; none may ever be printed.
	sentinels []string
	// vars are the environment variables holding sentinels.
	vars map[string]string
}

// sentinel returns a fresh secret value and remembers it.
func (f *secretFixture) sentinel(what string) string {
	s := fmt.Sprintf("s3nt1nel-%s-%d", what, len(f.sentinels))
	f.sentinels = append(f.sentinels, s)
	return s
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func newSecretFixture(t *testing.T) *secretFixture {
	t.Helper()
	f := &secretFixture{dir: t.TempDir(), vars: map[string]string{}, injected: make(chan string, 16)}
	natsUser, natsPass := f.sentinel("nats-user"), f.sentinel("nats-pass")
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		Username: natsUser, Password: natsPass, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	f.natsAddr = s.Addr().String()
	f.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case f.injected <- r.Header.Get("Authorization"):
		default:
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(f.upstream.Close)

	// Secrets that live in the environment.
	setVar := func(name, value string) string {
		t.Setenv(name, value)
		f.vars[name] = value
		return name
	}
	key, err := auth.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	f.sentinels = append(f.sentinels, key)
	masterEnv := setVar("APIGUARD_TEST_MASTER_KEY", key)
	jwtEnv := setVar("APIGUARD_TEST_JWT_SECRET", f.sentinel("jwt-hmac-key-0123456789abcdef0123456789"))
	siteEnv := setVar("APIGUARD_TEST_SITEVERIFY", f.sentinel("siteverify"))
	hookEnv := setVar("APIGUARD_TEST_WEBHOOK_KEY", f.sentinel("webhook-hmac"))
	adminEnv := setVar("APIGUARD_TEST_ADMIN_TOKEN", f.sentinel("admin-token"))
	idpEnv := setVar("APIGUARD_TEST_IDP_SECRET", f.sentinel("idp-client-secret"))
	setVar("APIGUARD_CLICKHOUSE_PASSWORD", f.sentinel("clickhouse-env"))

	// Secrets sealed in the vault.
	vaultFile := filepath.Join(f.dir, "vault.yaml")
	mk, err := auth.ParseMasterKey(key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.LoadVault(vaultFile, mk, true)
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{
		"upstream/token": f.sentinel("vault-upstream"),
		"tokens/seed":    f.sentinel("vault-seed-0123456789abcdef0123456789abcdef"),
	} {
		if err := v.Set(name, []byte(value), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Save(vaultFile); err != nil {
		t.Fatal(err)
	}

	closed := closedAddr(t)
	natsURL := "nats://" + natsUser + ":" + natsPass + "@" + f.natsAddr
	body := func(store bool) string {
		ch := ""
		if store {
			// The DSN's password replaces the file's and the environment's.
			ch = "  dsn: clickhouse://default:" + f.sentinel("clickhouse-dsn") + "@" + closed + "/apiguard?dial_timeout=1s\n"
		}
		return `nats:
  url: ` + natsURL + `
  partitions: 2
proxy:
  listen: 127.0.0.1:0
  upstream: ` + f.upstream.URL + `
  routes: ["GET /orders/{id}"]
  auth:
    jwt:
      issuers:
        - {issuer: idp, audience: [api], algorithms: [HS256], secret_env: ` + jwtEnv + `}
  secrets:
    vault_file: ` + vaultFile + `
    master_key_env: ` + masterEnv + `
    inject:
      - {header: Authorization, secret: upstream/token, format: "Bearer {secret}"}
  tokens:
    enabled: true
    siteverify: {url: "http://` + closed + `/siteverify", secret_env: ` + siteEnv + `}
emit:
  spool_dir: ` + filepath.Join(f.dir, "spool") + `
clickhouse:
` + ch + `  password: ` + f.sentinel("clickhouse-file") + `
  dial_timeout: 1s
alerts:
  alertmanager: "http://` + f.sentinel("am-user") + `:` + f.sentinel("am-pass") + `@` + closed + `/?token=` + f.sentinel("am-token") + `"
  retries: 0
  timeout: 1s
  webhooks:
    - {url: "http://` + closed + `/services/` + f.sentinel("slack-path") + `", format: slack}
    - {url: "http://` + closed + `/hooks/` + f.sentinel("json-path") + `", format: json, secret_env: ` + hookEnv + `}
responder:
  revocation:
    issuers:
      - {name: idp, endpoint: "http://` + closed + `/oauth2/revoke", client_id: apiguard, client_secret_env: ` + idpEnv + `}
admin:
  listen: 127.0.0.1:0
  token_env: ` + adminEnv + `
metrics:
  listen: 127.0.0.1:0
log:
  level: debug
`
	}
	f.full, f.noStore = filepath.Join(f.dir, "full.yaml"), filepath.Join(f.dir, "nostore.yaml")
	for path, text := range map[string]string{f.full: body(true), f.noStore: body(false)} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// leaks fails the test for every sentinel out shows.
func (f *secretFixture) leaks(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range f.sentinels {
		if strings.Contains(out, s) {
			t.Errorf("%s shows the secret %q:\n%s", what, s, out)
		}
	}
}

// captureStderr points os.Stderr, where the commands log, at a file until
// restore is called; read returns what was written.
func captureStderr(t *testing.T) (read func() string, restore func()) {
	t.Helper()
	file, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = file
	var once sync.Once
	restore = func() { once.Do(func() { os.Stderr = old; file.Close() }) }
	t.Cleanup(restore)
	return func() string { b, _ := os.ReadFile(file.Name()); return string(b) }, restore
}

// lockedWriter is a command's output, written by its goroutine and read
// by the test's.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startCommand runs an apiguard command until stop is called, which
// returns the command's error.
func startCommand(name string, args ...string) (out *lockedWriter, stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	out = &lockedWriter{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, name, args, out) }()
	return out, func() error { cancel(); return <-done }
}

// logged returns the value of key on the first log line with msg.
func logged(log, msg, key string) string {
	for line := range strings.Lines(log) {
		if strings.Contains(line, `msg="`+msg+`"`) {
			if m := regexp.MustCompile(`\b` + key + `=(\S+)`).FindStringSubmatch(line); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

// TestNoSecretIsPrinted configures a sentinel in every secret and checks
// that none appears in check-config's output, in the start-up, runtime and
// shutdown logs of proxy, pipeline and up at debug level, in a refused
// reload, in delivery failures, or in the errors of bad configs.
func TestNoSecretIsPrinted(t *testing.T) {
	f := newSecretFixture(t)
	ctx := context.Background()

	t.Run("every secret is configured", func(t *testing.T) {
		cfg, err := newCommon("test").load([]string{"--config", f.full}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkSecretCoverage(t, cfg, f)
	})

	t.Run("check-config", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(ctx, "check-config", []string{"--config", f.full}, &out); err != nil {
			t.Fatal(err)
		}
		f.leaks(t, "check-config", out.String())
		for _, want := range []string{"password: <redacted>", "url: <redacted>", "nats://<redacted>@" + f.natsAddr,
			"token=<redacted>", "secret_env: APIGUARD_TEST_WEBHOOK_KEY"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("check-config does not show %q:\n%s", want, out.String())
			}
		}
	})

	t.Run("proxy", func(t *testing.T) {
		read, restore := captureStderr(t)
		out, stop := startCommand("proxy", "--config", f.full)
		testutil.Eventually(t, 20*time.Second, func() bool {
			return logged(read(), "proxy listening", "addr") != "" && logged(read(), "serving admin endpoints", "addr") != ""
		}, "proxy did not start:\n%s", func() any { return read() })
		proxyAddr, adminURL := logged(read(), "proxy listening", "addr"), logged(read(), "serving admin endpoints", "addr")
		// A request gets the vault's credential injected upstream.
		resp, err := http.Get("http://" + proxyAddr + "/orders/1")
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		f.leaks(t, "the proxy's answer", string(answer))
		select {
		case got := <-f.injected:
			if !strings.HasPrefix(got, "Bearer s3nt1nel-vault-upstream") {
				t.Errorf("upstream saw Authorization %q, want the vault's credential", got)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("the request did not reach the upstream (status %d: %s)", resp.StatusCode, answer)
		}
		// A reload with a config whose upstream carries credentials is refused.
		good, _ := os.ReadFile(f.full)
		bad := strings.Replace(string(good), "upstream: "+f.upstream.URL,
			"upstream: http://"+f.sentinel("upstream-user")+":"+f.sentinel("upstream-pass")+"@127.0.0.1:1", 1)
		if err := os.WriteFile(f.full, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = os.WriteFile(f.full, good, 0o600) }()
		req, _ := http.NewRequest(http.MethodPost, adminURL+"/reload", nil)
		req.Header.Set("Authorization", "Bearer "+f.vars["APIGUARD_TEST_ADMIN_TOKEN"])
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		reloadAnswer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(reloadAnswer), "proxy.upstream") {
			t.Errorf("reload with credentials in proxy.upstream: %d %s", resp.StatusCode, reloadAnswer)
		}
		f.leaks(t, "the refused reload's answer", string(reloadAnswer))
		if err := stop(); err != nil {
			t.Errorf("proxy: %v", err)
		}
		restore()
		log := read()
		for _, want := range []string{"proxy listening", "config reload refused", "proxy stopped"} {
			if !strings.Contains(log, want) {
				t.Errorf("proxy log lacks %q:\n%s", want, log)
			}
		}
		f.leaks(t, "the proxy's log", log)
		f.leaks(t, "the proxy's output", out.String())
	})

	t.Run("pipeline without ClickHouse", func(t *testing.T) {
		read, restore := captureStderr(t)
		out, stop := startCommand("pipeline", "--config", f.noStore)
		testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(read(), "pipeline running") },
			"pipeline did not start:\n%s", func() any { return read() })
		if err := stop(); err != nil {
			t.Errorf("pipeline: %v", err)
		}
		restore()
		f.leaks(t, "the pipeline's log", read())
		f.leaks(t, "the pipeline's output", out.String())
	})

	t.Run("pipeline with ClickHouse away", func(t *testing.T) {
		read, restore := captureStderr(t)
		err := run(ctx, "pipeline", []string{"--config", f.full}, io.Discard)
		restore()
		if err == nil || !strings.Contains(err.Error(), "ClickHouse") {
			t.Fatalf("pipeline with ClickHouse on a closed port: %v", err)
		}
		f.leaks(t, "the pipeline's error", err.Error())
		f.leaks(t, "the pipeline's log", read())
	})

	t.Run("alert delivery failures", func(t *testing.T) {
		cfg, err := newCommon("test").load([]string{"--config", f.noStore}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var logs lockedWriter
		pctx, cancel := context.WithCancel(ctx)
		var g errgroup.Group
		pp, err := startPipeline(pctx, &g, cfg, cfg.NATS.URL, newLogger(cfg.Log, &logs), nil, nil, nil)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		a := &event.Anomaly{Id: "01SECRETTEST", TimeUnixNano: time.Now().UnixNano(), Detector: "rate", Api: "GET /orders/{id}",
			Principal: &event.Principal{Kind: event.KindKey, Value: "k1"}, Score: 0.9, Severity: event.Severity_SEVERITY_CRITICAL}
		_ = pp.alerter.WriteAnomaly(pctx, a)
		testutil.Eventually(t, 10*time.Second, func() bool { return pp.alerter.Stats().Failed.Load() == 3 }, "deliveries did not fail")
		cancel()
		if err := g.Wait(); err != nil {
			t.Error(err)
		}
		if !strings.Contains(logs.String(), "alert not delivered") {
			t.Errorf("no delivery failure logged:\n%s", logs.String())
		}
		f.leaks(t, "the alert sender's log", logs.String())
	})

	t.Run("up", func(t *testing.T) {
		read, restore := captureStderr(t)
		var out bytes.Buffer
		err := run(ctx, "up", []string{"--config", f.noStore, "--metrics-listen", "off", "--admin-listen", "off", "--for", "2s"}, &out)
		restore()
		if err != nil {
			t.Errorf("up: %v", err)
		}
		if !strings.Contains(out.String(), "apiguard is up") {
			t.Errorf("up printed:\n%s", out.String())
		}
		f.leaks(t, "up's output", out.String())
		f.leaks(t, "up's log", read())
	})

	t.Run("bad configs", func(t *testing.T) {
		good, _ := os.ReadFile(f.noStore)
		user, pass := f.sentinel("bad-user"), f.sentinel("bad-pass")
		creds := user + ":" + pass + "@"
		for _, tc := range []struct{ name, from, to, wantErr string }{
			{"nats.url scheme", "url: nats://", "url: http://", "nats.url"},
			{"proxy.upstream credentials", "upstream: http://", "upstream: http://" + creds, "proxy.upstream"},
			{"siteverify credentials", `url: "http://`, `url: "http://` + creds, "siteverify.url"},
			{"jwks_url credentials", "secret_env: APIGUARD_TEST_JWT_SECRET}", "jwks_url: 'https://" + creds + "idp/jwks'}", "jwks_url"},
			{"alertmanager scheme", `alertmanager: "http://`, `alertmanager: "ftp://`, "alerts.alertmanager"},
			{"webhook scheme", `- {url: "http://`, `- {url: "ftp://`, "alerts.webhooks[0].url"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if !strings.Contains(string(good), tc.from) {
					t.Fatalf("the fixture has no %q", tc.from)
				}
				path := filepath.Join(t.TempDir(), "bad.yaml")
				text := strings.Replace(string(good), tc.from, tc.to, 1)
				if tc.name == "jwks_url credentials" {
					text = strings.Replace(text, "algorithms: [HS256]", "algorithms: [RS256]", 1)
				}
				if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				err := run(ctx, "check-config", []string{"--config", path}, &out)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("check-config = %v, want an error naming %s", err, tc.wantErr)
				}
				f.leaks(t, "the error", err.Error())
				f.leaks(t, "check-config", out.String())
			})
		}
	})

	t.Run("NATS refuses the credentials", func(t *testing.T) {
		read, restore := captureStderr(t)
		wrong := "nats://" + f.sentinel("wrong-user") + ":" + f.sentinel("wrong-pass") + "@" + f.natsAddr
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := run(cctx, "pipeline", []string{"--config", f.noStore, "--nats", wrong, "--metrics-listen", "off"}, io.Discard)
		restore()
		if err == nil || !strings.Contains(err.Error(), "NATS") {
			t.Fatalf("pipeline with wrong NATS credentials: %v", err)
		}
		f.leaks(t, "the error", err.Error())
		f.leaks(t, "the pipeline's log", read())
	})
}

// Fields whose names suggest a secret but that hold none, and why. A new
// field matching secretName that is neither a secret type nor listed here
// fails TestNoSecretIsPrinted.
var notSecrets = map[string]string{
	"Proxy.Upstream":                               "Validate refuses credentials in it",
	"Proxy.Auth.JWT.Issuers[].JWKSURL":             "Validate refuses credentials in it",
	"Proxy.Tokens.SiteVerify.URL":                  "Validate refuses credentials in it",
	"Proxy.Tokens.SeedSecret":                      "names a vault secret",
	"Proxy.Secrets.Inject[].Secret":                "names a vault secret",
	"Alerts.DashboardURL":                          "a link template sent in every alert",
	"Responder.Revocation.Issuers[].TokenTypeHint": "the name of a token type (access_token, refresh_token)",
}

// secretName matches field names that suggest a secret. Names ending in
// Env, File, Path or Header say where a secret is, not what it is.
var (
	secretName = regexp.MustCompile(`(?i)pass(word|wd|phrase)?$|secret|token|credential|private|dsn|url$|upstream|alertmanager|webhook`)
	reference  = regexp.MustCompile(`(Env|File|Path|Header)$`)
	secretType = map[reflect.Type]bool{reflect.TypeFor[secret.String](): true, reflect.TypeFor[secret.URL](): true}
)

// checkSecretCoverage walks the Config type and the loaded cfg: every
// secret-typed field and every *_env field must hold a sentinel in the
// fixture (so a new secret field is exercised by the test), and every
// field whose name suggests a secret must have a secret type or a reason
// in notSecrets.
func checkSecretCoverage(t *testing.T, cfg Config, f *secretFixture) {
	t.Helper()
	want := map[string]bool{} // secret fields and env fields, by path
	var walkType func(reflect.Type, string, map[reflect.Type]bool)
	walkType = func(typ reflect.Type, path string, seen map[reflect.Type]bool) {
		switch {
		case secretType[typ]:
			want[path] = true
			return
		case typ.Kind() == reflect.Slice || typ.Kind() == reflect.Pointer:
			walkType(typ.Elem(), path+"[]", seen)
			return
		case typ.Kind() == reflect.Map:
			walkType(typ.Elem(), path+"{}", seen)
			return
		case typ.Kind() != reflect.Struct || seen[typ]:
			return
		}
		seen[typ] = true
		defer delete(seen, typ)
		for i := range typ.NumField() {
			fld := typ.Field(i)
			if !fld.IsExported() {
				continue
			}
			p := strings.TrimPrefix(path+"."+fld.Name, ".")
			if fld.Anonymous {
				p = path
			}
			base := fld.Type
			for base.Kind() == reflect.Slice || base.Kind() == reflect.Map {
				base = base.Elem()
			}
			if base.Kind() == reflect.String && !secretType[base] {
				if strings.HasSuffix(fld.Tag.Get("yaml"), "_env") {
					want[p] = true
				} else if secretName.MatchString(fld.Name) && !reference.MatchString(fld.Name) && notSecrets[p] == "" {
					t.Errorf("%s (%s) looks like a secret: make it a secret.String or secret.URL, or say why not in notSecrets", p, fld.Type)
				}
			}
			walkType(fld.Type, p, seen)
		}
	}
	walkType(reflect.TypeFor[Config](), "", map[reflect.Type]bool{})

	got := map[string]bool{}
	var walk func(reflect.Value, string)
	walk = func(v reflect.Value, path string) {
		switch {
		case secretType[v.Type()]:
			revealed := v.MethodByName("Reveal").Call(nil)[0].String()
			if slices.ContainsFunc(f.sentinels, func(s string) bool { return strings.Contains(revealed, s) }) {
				got[path] = true
			}
		case v.Kind() == reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i), path+"[]")
			}
		case v.Kind() == reflect.Map:
			for _, k := range v.MapKeys() {
				walk(v.MapIndex(k), path+"{}")
			}
		case v.Kind() == reflect.Pointer && !v.IsNil():
			walk(v.Elem(), path+"[]")
		case v.Kind() == reflect.Struct:
			for i := range v.NumField() {
				fld := v.Type().Field(i)
				if !fld.IsExported() {
					continue
				}
				p := strings.TrimPrefix(path+"."+fld.Name, ".")
				if fld.Anonymous {
					p = path
				}
				if v.Field(i).Kind() == reflect.String && strings.HasSuffix(fld.Tag.Get("yaml"), "_env") {
					if name := v.Field(i).String(); name != "" && slices.Contains(f.sentinels, os.Getenv(name)) {
						got[p] = true
					}
					continue
				}
				walk(v.Field(i), p)
			}
		}
	}
	walk(reflect.ValueOf(cfg), "")
	for p := range want {
		if !got[p] {
			t.Errorf("%s holds no sentinel in the test's config: give it one, so the test covers it", p)
		}
	}
	if len(want) < 8 {
		t.Errorf("found only %d secret fields: %v", len(want), want)
	}
}
