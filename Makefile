# ferry — make help lists the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:/usr/local/lib/ferry/tools:$(PATH)
GO ?= go
BIN := bin
PREFIX ?= /usr/local
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/ferryvm/ferry/internal/cli.Version=$(VERSION)

.PHONY: help build install deps kernel test unit lint demo testimages clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/ferry and bin/ferry-init
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ferry ./cmd/ferry
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/ferry-init ./cmd/ferry-init

install: build ## install ferry, ferry-init into $(PREFIX)
	install -D -m 0755 $(BIN)/ferry $(PREFIX)/bin/ferry
	install -D -m 0755 $(BIN)/ferry-init $(PREFIX)/lib/ferry/ferry-init

deps: ## install host prerequisites (apt packages, peer tools)
	./scripts/deps.sh

kernel: ## build (or reuse, cached by config hash) the guest kernel; install in $(PREFIX)/lib/ferry
	FERRY_LIB_DIR=$(PREFIX)/lib/ferry ./scripts/kernel.sh

lint: ## gofmt, go vet, go mod tidy (and golangci-lint when installed)
	@files=$$(git ls-files '*.go') && [ -n "$$files" ] || { echo 'lint: git ls-files lists no Go files: run it in a git checkout (if git refuses one owned by another user: git config --global --add safe.directory $(CURDIR))'; exit 1; }; \
	  bad=$$(gofmt -l $$files) && [ -z "$$bad" ] || { echo "lint: not gofmt-ed (run gofmt -w): $$bad"; exit 1; }
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo 'lint: go.mod/go.sum are not tidy: run go mod tidy'; exit 1; }
	@if command -v golangci-lint >/dev/null; then golangci-lint run ./...; fi

test: ## set up and run the whole suite (as root; what CI runs)
	./scripts/test.sh

demo: ## set up and run a locally built image as a micro-VM (as root)
	./scripts/demo.sh

unit: ## fast unit tests only (no root, no VMs)
	$(GO) test -short ./...

testimages: ## write the test images (busybox, layered, multi-platform, big) as an OCI layout in testimages/
	$(GO) run ./internal/testimage/mktestimages -o testimages -big

clean: ## remove build outputs
	rm -rf $(BIN)
