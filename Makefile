# apiguard — make targets. `make up` runs the demo, `make test` runs every test.
GO        ?= go
PROMTOOL  ?= promtool
BIN       := bin/apiguard
GOBIN     := $(shell $(GO) env GOPATH)/bin
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_VTPROTO := github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.0
STATICCHECK        := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build up test test-rules test-plugin test-dashboards dashboards plugin test-short bench bench-go bench-detect bench-proxy bench-loop bench-clickhouse bench-enforce generate lint fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/apiguard

## up: proxy, embedded JetStream, pipeline, responder, demo API and demo traffic (Ctrl-C to stop).
up: build
	./$(BIN) up --demo

## test: vet, then every unit, fuzz-seed and end-to-end test, with the race detector.
test: test-rules test-plugin test-dashboards
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

## test-rules: check the Prometheus config and unit-test the alert rules (promtool, Debian package prometheus).
test-rules:
	@command -v $(PROMTOOL) >/dev/null || { echo "promtool not found: apt-get install prometheus" >&2; exit 1; }
	$(PROMTOOL) check config deploy/prometheus/prometheus.yml
	$(PROMTOOL) check config deploy/prometheus/compose.yml
	$(PROMTOOL) test rules deploy/prometheus/rules_test.yml

## dashboards: regenerate the Grafana dashboards' JSON (dashboards/json) from their Go definitions.
dashboards:
	$(GO) run ./dashboards/gen -out dashboards/json

## test-dashboards: fail when the committed dashboards' JSON is not what the generator writes.
test-dashboards:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && $(GO) run ./dashboards/gen -out "$$tmp" && \
	if ! diff -r -u dashboards/json "$$tmp" >"$$tmp.diff"; then head -40 "$$tmp.diff"; rm -f "$$tmp.diff"; \
		echo "dashboards/json is stale: run make dashboards and commit dashboards/json" >&2; exit 1; fi; rm -f "$$tmp.diff"

## plugin: the Grafana plugin into dashboards/plugin/frontend/dist/: the app and its
## data source's frontend (npm ci, webpack), and the data source's backend
## executable for linux/amd64 and linux/arm64 in dist/datasource/ (docs/grafana.md).
PLUGIN_FRONTEND := dashboards/plugin/frontend
PLUGIN_DIST     := $(PLUGIN_FRONTEND)/dist
plugin: $(PLUGIN_FRONTEND)/node_modules/.package-lock.json
	cd $(PLUGIN_FRONTEND) && npm run build
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags='-s -w' \
			-o $(PLUGIN_DIST)/datasource/gpx_apiguard_linux_$$arch ./cmd/apiguard-grafana || exit 1; \
	done

## test-plugin: type-check the frontend, then its Jest tests (query editor, config editor, Investigate page).
test-plugin: $(PLUGIN_FRONTEND)/node_modules/.package-lock.json
	cd $(PLUGIN_FRONTEND) && npm run test:ci

# npm ci again only when the lock file changed since the last install.
$(PLUGIN_FRONTEND)/node_modules/.package-lock.json: $(PLUGIN_FRONTEND)/package-lock.json
	cd $(PLUGIN_FRONTEND) && npm ci --no-audit --no-fund

test-short:
	$(GO) test -short -count=1 ./...

## bench: Go benchmarks, detection figures, then wrk through the proxy, then the detection-to-block loop.
bench: bench-go bench-detect bench-proxy bench-loop bench-clickhouse bench-enforce

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./event ./enforce ./detectors ./replay ./proxy ./proxy/auth ./proxy/inspect

## bench-detect: backtest precision/recall on generated days, memory per pair, CSIC 2010 F1 (models alone and through the product path).
bench-detect: build
	deploy/bench/detect.sh

bench-proxy: build
	./deploy/bench/proxy.sh

## bench-enforce: 1,000,000 enforcement entries: bulk write, proxy cold start and from its snapshot, memory per entry, a change reaching 10 proxies.
bench-enforce: build
	./deploy/bench/enforce.sh

## bench-clickhouse: the ClickHouse writer against clickhouse-client on the same rows (needs clickhouse-server).
bench-clickhouse:
	deploy/bench/clickhouse.sh

bench-loop: build
	./deploy/bench/loop.sh

## generate: rebuild event/*.pb.go from event/event.proto.
generate:
	command -v protoc >/dev/null || (apt-get update && apt-get install -y protobuf-compiler)
	$(GO) install $(PROTOC_GEN_GO)
	$(GO) install $(PROTOC_GEN_VTPROTO)
	PATH="$(GOBIN):$$PATH" protoc -I . --go_out=. --go_opt=paths=source_relative \
		--go-vtproto_out=. --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+unmarshal_unsafe+size \
		event/event.proto

## lint: gofmt, vet and staticcheck must all be clean.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## fuzz: FUZZTIME (default 10s) of every fuzz target in the repository, one after
## another. The targets are listed by `go test -list '^Fuzz'` in each package whose
## tests define one, so a new target runs without a change here. The seeds in
## testdata/ run in `make test`.
FUZZTIME ?= 10s
fuzz:
	@set -e; \
	pkgs=$$(grep -rl --include='*_test.go' --exclude-dir=node_modules --exclude-dir=.git '^func Fuzz' . | xargs -n1 dirname | sort -u); \
	[ -n "$$pkgs" ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }; \
	n=0; \
	for pkg in $$pkgs; do \
		targets=$$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz') || { echo "fuzz: listing $$pkg failed" >&2; exit 1; }; \
		for target in $$targets; do \
			echo "fuzz: $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
			n=$$((n+1)); \
		done; \
	done; \
	echo "fuzz: $$n targets, $(FUZZTIME) each"

clean:
	rm -rf bin var
