# Tenantry. `make help` lists the targets.

SHELL := /bin/bash
GO    ?= go

GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT         := $(shell $(GO) env GOPATH)/bin/golangci-lint

# Arguments passed to `tenantry serve` by `make run`, e.g. make run ARGS='--log-format json'.
ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: postgres
postgres: ## Install the PostgreSQL server packages with apt-get if they are missing
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
		echo "PostgreSQL server binaries not found: installing them with apt-get"; \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; \
	fi

# run builds and execs the binary rather than `go run`, which exits 1 when
# Ctrl-C stops the server, making make report a failure after a clean stop.
.PHONY: run
run: postgres build ## Run `tenantry serve` on its embedded PostgreSQL under ./.tenantry
	bin/tenantry serve $(ARGS)

.PHONY: test
test: postgres ## Run every test with the race detector
	$(GO) test -race -count=1 ./...

.PHONY: bench
bench: postgres ## Run the benchmarks (figures go to docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (installs it if missing)
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: build
build: ## Build bin/tenantry
	$(GO) build -o bin/tenantry ./cmd/tenantry

.PHONY: clean
clean: ## Remove bin/ (not the data under ./.tenantry)
	rm -rf bin
