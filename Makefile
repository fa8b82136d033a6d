# Parley developer tasks. Run `make` (or `make help`) for the list.
#
# Every tool is either the go command or pinned in tools/go.mod and run with
# `go tool`, so nothing needs installing besides Go and make.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO            ?= go
GOLANGCI_LINT := $(GO) tool -modfile=tools/go.mod golangci-lint
BENCHSTAT     := $(GO) tool -modfile=tools/go.mod benchstat

# Overridable: make testnet NODES=5 USERS=100 DURATION=2m SCENARIO=kill
NODES    ?= 3
USERS    ?= 30
DURATION ?= 60s
SEED     ?= 1
SCENARIO ?= steady
TESTNET_DIR ?=
TESTNET_FLAGS ?=

# Overridable: make bench BENCH_NODES=3 BENCH_USERS=50 BENCH_DURATION=20s BENCH_OUT=dir
BENCH_NODES    ?= 10
BENCH_USERS    ?= 1000
BENCH_DURATION ?= 30s
BENCH_OUT      ?=

# Overridable: make bench-go BENCH=Decode PKG=./protocol/wire/...
PKG      ?= ./protocol/...
FUZZPKG  ?= ./...
BENCH    ?= .
COUNT    ?= 1
FUZZTIME ?= 10s

# The Go files gofmt checks: everything but testdata and .git.
GOFMT_FILES = find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0 | xargs -0 --no-run-if-empty gofmt -l

.PHONY: help build test fmt-check fmt vet lint bench bench-go benchstat fuzz vectors tidy clean testnet

help: ## Show this help
	@echo 'Usage: make <target> [VAR=value]'
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo 'Variables: PKG=$(PKG) BENCH=$(BENCH) COUNT=$(COUNT) FUZZTIME=$(FUZZTIME) BENCH_NODES=$(BENCH_NODES) BENCH_USERS=$(BENCH_USERS) BENCH_DURATION=$(BENCH_DURATION)'

build: ## Build every package
	$(GO) build ./...

# test runs its steps in order in one recipe, so `make -j` cannot reorder
# them and the first failure stops the rest.
test: ## Check formatting, vet, lint, then run all tests with the race detector
	@echo '==> gofmt'
	@$(MAKE) --no-print-directory fmt-check
	@echo '==> go vet'
	$(GO) vet ./...
	@echo '==> golangci-lint'
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...
	@echo '==> go test -race'
	$(GO) test -race -count=1 ./...

fmt-check: ## Fail, listing them, if any Go files are not gofmt-formatted
	@files=$$($(GOFMT_FILES)); \
	if [ -n "$$files" ]; then \
		echo 'gofmt: these files are not formatted (run make fmt):'; \
		echo "$$files"; \
		exit 1; \
	fi

fmt: ## Format all Go files (gofmt and goimports, as configured in .golangci.yml)
	$(GOLANGCI_LINT) fmt ./...

vet: ## Run go vet
	$(GO) vet ./...

lint: ## Run golangci-lint (pinned in tools/go.mod; built on first use)
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...

# bench runs the end-to-end benchmarks of issues 3, 4, 5 and 7 and a
# testnet (testnet/bench), keeps each step's output in BENCH_OUT (default a
# new temporary directory) and prints one table. Reprint a past run's table
# with: go run ./testnet/bench -from DIR
bench: ## End-to-end benchmarks and a testnet (BENCH_NODES=10 BENCH_USERS=1000 BENCH_DURATION=30s BENCH_OUT=dir): one table
	$(GO) run ./testnet/bench -nodes '$(BENCH_NODES)' -users '$(BENCH_USERS)' -duration '$(BENCH_DURATION)' -seed '$(SEED)' $(if $(BENCH_OUT),-out '$(BENCH_OUT)')

# To compare two runs: make bench-go COUNT=10 > old.txt; (change);
# make bench-go COUNT=10 > new.txt; make benchstat OLD=old.txt NEW=new.txt
bench-go: ## Run go test benchmarks with allocations (BENCH=regex PKG=./protocol/... COUNT=n)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count=$(COUNT) $(PKG)

benchstat: ## Compare two saved bench outputs (OLD=old.txt NEW=new.txt)
	@if [ -z '$(OLD)' ] || [ -z '$(NEW)' ]; then echo 'usage: make benchstat OLD=old.txt NEW=new.txt'; exit 2; fi
	$(BENCHSTAT) '$(OLD)' '$(NEW)'

# go test -fuzz takes one target in one package, so list each package's
# Fuzz* targets and run them one after another.
fuzz: ## Run every Fuzz* target under FUZZPKG (default ./...) for FUZZTIME each (default 10s)
	@n=0; \
	for pkg in $$($(GO) list $(FUZZPKG)); do \
		list=$$($(GO) test -list '^Fuzz' "$$pkg"); \
		targets=$$(grep '^Fuzz' <<<"$$list" || true); \
		for t in $$targets; do \
			echo "==> $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime '$(FUZZTIME)' "$$pkg"; \
			n=$$((n + 1)); \
		done; \
	done; \
	echo "fuzz: ran $$n target(s)"

# Each package with test vectors has a TestVectors test honouring -update
# (spec/vectortest). Only those packages get the flag: a test binary that
# does not define -update would refuse it.
vectors: ## Regenerate the spec test vectors (spec/testdata/*.json)
	@pkgs=$$({ grep -rl --include='*_test.go' '^func TestVectors' protocol || true; } | xargs --no-run-if-empty -n1 dirname | sort -u | sed 's|^|./|'); \
	if [ -z "$$pkgs" ]; then echo 'vectors: no TestVectors tests under protocol/'; exit 0; fi; \
	echo "$(GO) test $$(echo $$pkgs) -run 'TestVectors' -args -update"; \
	$(GO) test $$pkgs -run 'TestVectors' -args -update; \
	echo 'vectors: review the changes with git diff spec/testdata'

testnet: ## Start a local network with simulated users (NODES USERS DURATION SEED SCENARIO=steady|kill|partition|churn TESTNET_DIR)
	$(GO) run ./testnet -nodes '$(NODES)' -users '$(USERS)' -duration '$(DURATION)' -seed '$(SEED)' -scenario '$(SCENARIO)' $(if $(TESTNET_DIR),-dir '$(TESTNET_DIR)') $(TESTNET_FLAGS)

tidy: ## Tidy go.mod and go.sum of the module and of tools/
	$(GO) mod tidy
	cd tools && $(GO) mod tidy

clean: ## Remove build outputs and coverage files
	$(GO) clean ./...
	rm -rf bin/ coverage.out coverage.html *.coverprofile
