# Weft. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X github.com/weftiot/weft/internal/version.Version=$(VERSION) \
	-X github.com/weftiot/weft/internal/version.Commit=$(COMMIT) \
	-X github.com/weftiot/weft/internal/version.Date=$(DATE)
CMDS := agent/cmd/weft-agent gateway/cmd/weft-gateway sim/cmd/weft-sim
export CGO_ENABLED ?= 0

.PHONY: help build test check bench demo release deps fuzz soak clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build weft-agent, weft-gateway and weft-sim into ./bin
	@mkdir -p $(BIN)
	@for c in $(CMDS); do [ -d $$c ] || continue; \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/$$(basename $$c) ./$$c || exit 1; done

deps: ## install Mosquitto, Chromium, socat, mbpoll; build InfluxDB 1.8.3 once
	@./.ci/deps >/dev/null

test: ## install what the tests need, then run unit, integration, fuzz-smoke and browser tests
	@set -e; deps=$$(./.ci/deps); eval "$$deps"; export WEFT_MOSQUITTO WEFT_INFLUXD WEFT_CHROMIUM; \
	$(MAKE) --no-print-directory build; \
	WEFT_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 40m ./... 2>&1 | tee test.log; \
	status=$${PIPESTATUS[0]}; \
	$(MAKE) --no-print-directory fuzz || status=1; \
	echo; echo "== go test summary (full log: test.log)"; \
	grep -E '^(ok|FAIL|--- FAIL|panic:)' test.log | tail -80; \
	exit $$status

fuzz: ## run every fuzz target briefly (FUZZTIME=3000x executions; a duration such as 30s works too); a failure prints the crasher
	@set -e; out=$$(mktemp); trap 'rm -f $$out' EXIT; status=0; \
	for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(cat $$dir/*_test.go 2>/dev/null | sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p'); do \
			echo "fuzz $$pkg $$f"; \
			if ! $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-3000x} $$pkg >$$out 2>&1; then \
				cat $$out; echo "FAIL fuzz $$pkg $$f (the failing input is under that package's testdata/fuzz/$$f)"; status=1; \
			fi; \
		done; done; exit $$status

check: ## gofmt, go vet, and the race detector on the short tests
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -short -count=1 ./...

bench: ## run the Go benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...

soak: ## the long forms: crash tests (WEFT_SOAK=1) and the end-to-end scenarios of e2e/ (about 90 min; log in soak.log)
	@set -e; deps=$$(./.ci/deps); eval "$$deps"; export WEFT_MOSQUITTO WEFT_INFLUXD WEFT_CHROMIUM; \
	$(MAKE) --no-print-directory build; mkdir -p docs/img; \
	status=0; WEFT_SOAK=1 $(GO) test -count=1 -timeout 60m -run 'Crash|Soak' ./... || status=1; \
	WEFT_SOAK=1 WEFT_BIN=$(CURDIR)/$(BIN) WEFT_E2E_CHARTS=$(CURDIR)/docs/img $(GO) test -count=1 -timeout 180m -v ./e2e 2>&1 | tee soak.log; \
	[ $${PIPESTATUS[0]} -eq 0 ] || status=1; exit $$status

demo: build ## run simulated PLCs, agents and the gateway with its dashboard (Ctrl-C stops)
	@./deploy/demo/run.sh

release: ## static binaries for linux amd64, arm64, arm/v7, 386 into dist/ with SHA-256 sums
	@./deploy/release.sh

clean: ## remove bin/ and dist/
	rm -rf $(BIN) dist test.log
