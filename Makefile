# Chorus developer commands. README.md explains the two that matter: `make run` and `make test`.

CARGO ?= cargo
DATA_DIR ?= .chorus-data

.PHONY: run test lint unit build bench clean

## Build and start standalone on 127.0.0.1:8080 in dev mode (prints how to get a token).
run:
	$(CARGO) build --release --locked -p chorus
	./target/release/chorus standalone --dev --data-dir $(DATA_DIR)

## The whole test suite: formatting, lints, unit, conformance and black-box tests.
test: lint unit

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Real services (nats-server) are installed, started on test ports and stopped around the run.
unit:
	bash scripts/with-test-services.sh $(CARGO) test --workspace --locked

build:
	$(CARGO) build --release --locked -p chorus

## Benchmarks (not tests): prints figures for docs/benchmarks.md.
bench:
	bash scripts/bench.sh

clean:
	$(CARGO) clean
	rm -rf $(DATA_DIR)
