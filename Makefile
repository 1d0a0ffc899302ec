# Chorus developer commands. README.md explains the two that matter: `make run` and `make test`.
# `make up` / `make down` start and stop a local cluster (scripts/cluster.sh).

CARGO ?= cargo
DATA_DIR ?= .chorus-data

.PHONY: run test tools lint unit clients chart smoke build dist up down bench clean

## Build and start standalone on 127.0.0.1:8080 in dev mode (prints how to get a token).
run:
	$(CARGO) build --release --locked -p chorus
	./target/release/chorus standalone --dev --data-dir $(DATA_DIR)

## The whole test suite: formatting, lints, unit, conformance, black-box and browser tests,
## the Grafana dashboards against a real Prometheus and the k6 smoke (both on dist/chorus, the
## release binary the image ships), and the Helm chart's offline validation.
## The tools' installs (scripts/install-tools.sh) start first, in the background at low
## priority, so that on a fresh machine their downloads and Go builds overlap the Rust builds;
## each stage still installs what it needs itself (idempotent, under the same locks).
test:
	bash scripts/install-tools.sh start
	@$(MAKE) --no-print-directory lint dist unit chart smoke; rc=$$?; \
	  bash scripts/install-tools.sh stop; exit $$rc

## Every tool the suite uses, installed (and cached under ~/.cache/chorus) in the foreground.
tools:
	bash scripts/install-tools.sh install

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Real services (nats-server, Cassandra) are installed, started on test ports and stopped
## around the run; the clients' tests (SDK, cluster drain, browser tests in Chromium) run on
## the same services after the Rust tests, with the chorus binary those built (a separate
## `cargo build` would rebuild dependencies with other features: two minutes for nothing).
## Then the dashboards test (scripts/dashboards-test.sh): a real Prometheus scrapes a local
## cluster under k6 load, and every panel's query must return data (dist/chorus when built).
unit:
	bash scripts/with-test-services.sh sh -c '$(CARGO) test --workspace --locked && bash scripts/clients-test.sh && bash scripts/dashboards-test.sh'

## Only the clients' tests (SDK, cluster drain, browser): faster when the Rust side is unchanged.
clients:
	$(CARGO) build --locked -p chorus
	bash scripts/with-test-services.sh bash scripts/clients-test.sh

## The k6 smoke (loadtest/k6/smoke.js) against a standalone run from dist/chorus, the release
## binary the image ships: counts and send -> deliver latency thresholds. Then the commands of
## the chart's `helm test` pod, twice, against the same server. The other k6 scripts are for
## `make bench`-style runs (loadtest/README.md).
smoke: dist
	CHORUS_BIN=dist/chorus bash scripts/k6-smoke.sh

## The Helm chart and the kustomize manifests in k8s/, validated offline with the real tools
## (scripts/chart-test.sh, scripts/k8s-test.sh).
chart:
	bash scripts/chart-test.sh
	bash scripts/k8s-test.sh

build:
	$(CARGO) build --release --locked -p chorus

## The release binary the Dockerfile copies, with its checksum: dist/chorus, dist/chorus.sha256.
dist: build
	mkdir -p dist
	cp target/release/chorus dist/chorus
	cd dist && sha256sum chorus > chorus.sha256
	./dist/chorus --version

## A local cluster: NATS (4222), Cassandra (9042), `chorus migrate`, routers router-1 and
## router-2 (gRPC 7001/7002, health 9101/9102), gateways on 127.0.0.1:8081 and :8082.
## Prints a token command and websocat lines; logs in .chorus-cluster/logs/. Idempotent.
up:
	CARGO="$(CARGO)" bash scripts/cluster.sh up

## Stops the local cluster: gateways, routers, Cassandra, NATS (data is kept for the next `up`).
down:
	bash scripts/cluster.sh down

## Benchmarks (not tests): prints figures for docs/benchmarks.md.
bench:
	bash scripts/bench.sh

clean:
	$(CARGO) clean
	rm -rf $(DATA_DIR) dist
