# edged — `make` lists the targets.

GO        ?= go
# Tools the tests and lint need (influxd, staticcheck) are built once into
# this cache, outside the repository.
export EDGED_TOOLS   ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/edged
export EDGED_INFLUXD ?= $(EDGED_TOOLS)/bin/influxd

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS   := -s -w -X github.com/edged-io/edged/internal/cli.Version=$(VERSION)
DIST      := dist
STATICCHECK_VERSION := v0.8.2
BENCHSTAT := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
BENCH_COUNT ?= 6
FUZZTIME  ?= 30s
TEST_TIMEOUT ?= 25m

.DEFAULT_GOAL := help
.PHONY: help setup build run test test-race reliability reliability-long bench bench-ingest bench-alerts bench-ship bench-peers fuzz lint cross package test-packaging clean

help: ## list the targets
	@echo "edged — edge IoT sensor aggregation. Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  make \1\t/' | expand -t 20

setup: ## install mosquitto (apt) and build influxd v1.8.10 into $(EDGED_TOOLS) (idempotent)
	scripts/setup-test-env.sh

build: ## build bin/edged for this machine
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/edged ./cmd/edged

run: ## run the main job on embedded defaults (data under ./data; Ctrl-C stops)
	$(GO) run ./cmd/edged run

test: setup ## all tests: unit, fault injection, kill -9, fuzz seed corpora, integration with real mosquitto + influxd
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v /internal/reliability)
	@# the whole-pipeline fault suite alone: it loads both cores, and timing-sensitive tests beside it would flake
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./internal/reliability/

test-race: setup ## the short test suite under the race detector
	$(GO) test -race -short -count=1 -timeout $(TEST_TIMEOUT) ./...

reliability: setup ## whole-pipeline fault injection, short tier (also in make test; root): figures in dist/, see RELIABILITY.md
	@mkdir -p $(DIST)
	rm -f $(DIST)/reliability.txt
	EDGED_RELIABILITY_REPORT=$(CURDIR)/$(DIST)/reliability.txt $(GO) test -count=1 -v -timeout 30m ./internal/reliability/
	@cat $(DIST)/reliability.txt

reliability-long: setup ## the long tier: 300 kill -9, 120 power cuts, a 10-minute InfluxDB outage, a 30-minute soak, … (about 20 min + the soak)
	@mkdir -p $(DIST)
	rm -f $(DIST)/reliability-long.txt
	EDGED_RELIABILITY=long EDGED_RELIABILITY_REPORT=$(CURDIR)/$(DIST)/reliability-long.txt $(GO) test -count=1 -v -timeout 3h ./internal/reliability/
	@cat $(DIST)/reliability-long.txt

bench: ## benchmarks, each figure beside a reference measured in the same run; medians of BENCH_COUNT runs
	@mkdir -p $(DIST)
	$(GO) test -run '^$$' -bench . -benchtime 2s -count $(BENCH_COUNT) -timeout 60m ./wal/ | tee $(DIST)/bench.txt
	$(GO) test -run '^$$' -bench 'ReplayScan' -benchtime 2s -count $(BENCH_COUNT) -cpu 1 -timeout 30m ./wal/ | tee $(DIST)/bench-1cpu.txt
	$(GO) test -run '^$$' -bench . -benchtime 1s -count $(BENCH_COUNT) -cpu 1 -timeout 30m ./aggregate/ ./sensors/payload/ | tee $(DIST)/bench-speed.txt
	$(GO) test -run '^$$' -bench 'Replay' -benchtime 5x -count 3 -timeout 30m ./aggregate/replay/ | tee $(DIST)/bench-replay.txt
	$(GO) run $(BENCHSTAT) $(DIST)/bench.txt
	$(GO) run $(BENCHSTAT) $(DIST)/bench-1cpu.txt
	$(GO) run $(BENCHSTAT) $(DIST)/bench-speed.txt

bench-ingest: setup ## end-to-end MQTT ingest through mosquitto into edged vs a paho counting subscriber and mosquitto_sub (a few minutes)
	@mkdir -p $(DIST)
	$(GO) test -run '^$$' -bench Ingest -benchtime 1x -count 3 -timeout 30m ./internal/e2e/ | tee $(DIST)/bench-ingest.txt

bench-alerts: setup ## alert latency through mosquitto and edged under 10k readings/s vs the broker's own round trip (a minute)
	@mkdir -p $(DIST)
	$(GO) test -run '^$$' -bench AlertLatency -benchtime 1x -count $(BENCH_COUNT) -timeout 30m ./internal/e2e/ | tee $(DIST)/bench-alerts.txt

PEERS ?= ../shared/bench/peers
PEERS_MODE ?= quick

bench-peers: build ## edged beside Telegraf and the broker ceilings on the shared harness's workload (PEERS_MODE=quick|full)
	EDGED_CMD='$(CURDIR)/scripts/peers-edged.sh {broker} {topic} {qos}' EDGED_OUTPUT=mqtt EDGED_OUT_TOPIC='edged/peers/agg/#' \
		$(PEERS)/run.sh $(PEERS_MODE)

bench-ship: setup ## shipper drain rate into the real InfluxDB vs the client's own ceiling
	@mkdir -p $(DIST)
	$(GO) test -run '^$$' -bench Ship -benchtime 3x -count $(BENCH_COUNT) -timeout 30m ./sync/ship/ | tee $(DIST)/bench-ship.txt

FUZZ_PKGS ?= . ./wal/ ./sensors/payload/ ./internal/config/ ./aggregate/ ./aggregate/view/ ./alerts/ ./sync/ship/ ./sensors/periph/

fuzz: ## run every fuzz target for FUZZTIME each (default 30s); crashers land in the package's testdata/fuzz
	@for p in $(FUZZ_PKGS); do for t in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do \
		echo "== $$p $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; done; done

lint: ## go vet + staticcheck
	$(GO) vet ./...
	@test -x $(EDGED_TOOLS)/bin/staticcheck || (cd / && GOBIN=$(EDGED_TOOLS)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION))
	$(EDGED_TOOLS)/bin/staticcheck ./...

cross: ## static binaries for linux/arm (GOARM=6, every Pi), linux/arm64 and linux/amd64 into dist/
	@mkdir -p $(DIST)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/edged-linux-armv6 ./cmd/edged
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/edged-linux-arm64 ./cmd/edged
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/edged-linux-amd64 ./cmd/edged
	@ls -l $(DIST)/edged-linux-*

package: cross ## .deb packages of edged and edged-reconcile for armhf, arm64 and amd64 into dist/ (nfpm; see packaging/README.md)
	DIST=$(DIST) VERSION=$(VERSION) GO=$(GO) packaging/build-debs.sh

test-packaging: setup ## the packaging tests alone: build the .debs, inspect them (lintian too), unpack into a scratch root, score the units, run the ARM builds under qemu
	$(GO) test -count=1 -v ./packaging/

clean: ## remove build outputs (not ./data)
	rm -rf bin $(DIST)
