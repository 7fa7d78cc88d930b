# apiguard — make targets. `make up` runs the demo, `make test` runs every test.
GO        ?= go
PROMTOOL  ?= promtool
BIN       := bin/apiguard
GOBIN     := $(shell $(GO) env GOPATH)/bin
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_VTPROTO := github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.0
STATICCHECK        := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build up test test-rules test-plugin plugin test-short bench bench-go bench-detect bench-proxy bench-loop bench-clickhouse generate lint fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/apiguard

## up: proxy, embedded JetStream, pipeline, responder, demo API and demo traffic (Ctrl-C to stop).
up: build
	./$(BIN) up --demo

## test: vet, then every unit, fuzz-seed and end-to-end test, with the race detector.
test: test-rules test-plugin
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

## test-rules: check the Prometheus config and unit-test the alert rules (promtool, Debian package prometheus).
test-rules:
	@command -v $(PROMTOOL) >/dev/null || { echo "promtool not found: apt-get install prometheus" >&2; exit 1; }
	$(PROMTOOL) check config deploy/prometheus/prometheus.yml
	$(PROMTOOL) test rules deploy/prometheus/rules_test.yml

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
bench: bench-go bench-detect bench-proxy bench-loop bench-clickhouse

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./event ./enforce ./detectors ./replay ./proxy ./proxy/inspect

## bench-detect: backtest precision/recall on generated days, memory per pair, CSIC 2010 F1.
bench-detect: build
	deploy/bench/detect.sh

bench-proxy: build
	./deploy/bench/proxy.sh

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

## fuzz: a short run of every fuzz target (the seeds in testdata/ run in `make test`).
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzUnmarshalEvent -fuzztime $(FUZZTIME) ./event
	$(GO) test -run '^$$' -fuzz FuzzParseKey -fuzztime $(FUZZTIME) ./enforce/kv
	$(GO) test -run '^$$' -fuzz FuzzTemplater -fuzztime $(FUZZTIME) ./proxy
	$(GO) test -run '^$$' -fuzz FuzzQuery -fuzztime $(FUZZTIME) ./proxy
	$(GO) test -run '^$$' -fuzz FuzzDecodeRecords -fuzztime $(FUZZTIME) ./proxy/emit
	$(GO) test -run '^$$' -fuzz FuzzImportCombined -fuzztime $(FUZZTIME) ./replay
	$(GO) test -run '^$$' -fuzz FuzzImportNginx -fuzztime $(FUZZTIME) ./replay
	$(GO) test -run '^$$' -fuzz FuzzImportJSON -fuzztime $(FUZZTIME) ./replay
	$(GO) test -run '^$$' -fuzz FuzzImportHAR -fuzztime $(FUZZTIME) ./replay
	$(GO) test -run '^$$' -fuzz FuzzImportRawHTTP -fuzztime $(FUZZTIME) ./replay

clean:
	rm -rf bin var
