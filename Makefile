# paf — every target installs what it needs when missing, so a fresh clone needs nothing else.
SHELL := /bin/bash
NODE_MODULES := node_modules/.package-lock.json
ADDON := build/Release/paf_tap.node
TS_SOURCES := $(shell find stack tls http cli lab -name '*.ts' 2>/dev/null) index.ts

.PHONY: all build test demo bench clean typecheck lint format deps-demo deps-test deps-bench

# System (Debian) packages: scripts/deps.sh holds the one list, checks what each use runs and
# installs what is missing (as root with apt), or says what to install and stops.
deps-demo deps-test deps-bench: deps-%:
	@bash scripts/deps.sh $*

all: build

$(NODE_MODULES): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

$(ADDON): $(NODE_MODULES) binding.gyp stack/netif/tap/tap.c stack/netif/tap/srcfilter.c stack/netif/tap/srcfilter.h stack/netif/tap/uring.c stack/netif/tap/uring.h
	npx node-gyp rebuild --loglevel=warn

dist/.built: $(NODE_MODULES) $(TS_SOURCES) tsconfig.json
	npx tsc -p tsconfig.json
	@chmod +x dist/cli/main.js
	@touch $@

build: $(ADDON) dist/.built

typecheck: $(NODE_MODULES)
	npx tsc -p tsconfig.test.json --noEmit

# Lint and formatting (Biome, biome.json): the tree must be clean; `make format` rewrites it.
lint: $(NODE_MODULES)
	npx biome check .

format: $(NODE_MODULES)
	npx biome format --write .

# All tests. Tests that need root and /dev/net/tun fail loudly when they cannot run,
# unless PAF_ALLOW_SKIP_PRIVILEGED=1 is set.
test: deps-test build typecheck lint
	node scripts/run-tests.mjs

demo: deps-demo build
	bash scripts/demo.sh

bench: deps-bench build
	node scripts/bench.mjs

clean:
	rm -rf dist build
