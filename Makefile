# Plugboard: `make run` starts the platform, `make test` runs every test.
# The SDK (sdk/plugboard) is a Go module of its own, so that partners who
# `go get` it pull only its requirements: test, lint and tidy run over it
# too. The main module reaches it through the replace in go.mod; no go.work.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/plugboard/plugboard/cmd/platform.Version=$(VERSION)
BIN     := bin/plugboard
SDK     := sdk/plugboard
STATICCHECK = $$( command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck )

.PHONY: run test build lint fmt tidy migrate services bench screenshots fuzz clean

## run: start PostgreSQL and Redis if needed, then `plugboard serve` on :8080
run: services build
	$(BIN) serve

## test: every test, against real PostgreSQL and Redis, then the SDK module's
test: services
	$(GO) test -count=1 -timeout 15m ./...
	cd $(SDK) && $(GO) test -count=1 ./...

## build: the binary at bin/plugboard
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/plugboard

## lint: go vet, staticcheck and deadcode over both modules, and Spectral on the OpenAPI document
lint:
	$(GO) vet ./...
	cd $(SDK) && $(GO) vet ./...
	@command -v staticcheck >/dev/null || test -x $$($(GO) env GOPATH)/bin/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	$(STATICCHECK) ./...
	cd $(SDK) && $(STATICCHECK) ./...
	.ci/deadcode
	@test -x .tools/node_modules/.bin/spectral || (mkdir -p .tools && cd .tools && npm install --no-audit --no-fund --silent @stoplight/spectral-cli@6.16.3)
	.tools/node_modules/.bin/spectral lint web/openapi.yaml --ruleset .spectral.yaml --fail-severity warn

## fmt: gofmt every file
fmt:
	gofmt -w $$(git ls-files '*.go')

## tidy: go mod tidy, in both modules
tidy:
	$(GO) mod tidy
	cd $(SDK) && $(GO) mod tidy

## migrate: apply pending migrations to PLUGBOARD_DATABASE_URL
migrate: services build
	$(BIN) migrate up

## services: start PostgreSQL and Redis when they are not running
services:
	@.ci/services

## screenshots: the main pages in Chromium at 1280x800, into docs/screenshots
screenshots: services
	@.ci/chromium
	PLUGBOARD_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestScreenshots$$' ./web/

## bench: the webhook pipeline end to end, the headline set of issue #19 (under 10 minutes), then the Go micro-benchmarks
BENCH    ?= bin/bench-webhooks
BENCHRUN  = $(BENCH) -postgres "$${PLUGBOARD_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
bench: services
	$(GO) build -o $(BENCH) ./bench/webhooks
	$(BENCHRUN) -apps 1 -duration 20s
	$(BENCHRUN) -apps 1 -batch 100 -duration 20s
	$(BENCHRUN) -apps 20 -duration 20s
	$(BENCHRUN) -orgs 2000 -installs 1-3 -apps 20 -duration 20s
	$(BENCHRUN) -mode latency -apps 1 -target 2000 -duration 15s
	$(BENCHRUN) -mode latency -orgs 2000 -installs 1-3 -apps 20 -target 2000 -duration 15s
	$(BENCHRUN) -mode wide -apps 10000 -rounds 2
	$(BENCHRUN) -mode api -apps 20 -attempts 10000000 -rate 1000 -duration 15s
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 100ms ./...

## fuzz: every fuzz target of both modules (.ci/fuzz-targets finds them) for FUZZTIME each, one after another; `go test` runs their seed corpora
FUZZTIME  ?= 60s
FUZZFLAGS ?= -parallel 1
fuzz:
	@.ci/fuzz-targets | while read -r mod pkg name; do \
		echo "== $$name ($$mod $$pkg)"; \
		(cd $$mod && $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg) || exit 1; \
	done

clean:
	rm -rf bin
