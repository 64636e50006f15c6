# `make run` and `make test` are the whole setup on a fresh Debian machine with the Rust toolchain:
# they install what is missing, start Redis and Postgres where none answer, then build and run.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

export REDIS_URL ?= redis://127.0.0.1:6379
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/tickets
export GATEWAY_ADDR ?= 127.0.0.1:8000
export SETTLER_METRICS_ADDR ?= 127.0.0.1:9100
export RUST_LOG ?= info

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PG_HOST := 127.0.0.1
PG_PORT := 5432
REDIS_PORT := 6379

.PHONY: run test bench deps services redis postgres build lint clean-test-databases loadtest-smoke

## run: install what is missing, start Redis and Postgres, build, then run the settler and the
## gateway (http://127.0.0.1:8000) until Ctrl-C, which stops both gracefully
run: services build
	@echo "gateway: http://$(GATEWAY_ADDR)  (API under /api, e.g. http://$(GATEWAY_ADDR)/api/concerts)"
	@echo "settler: http://$(SETTLER_METRICS_ADDR)/metrics"
	@trap 'kill -TERM $$settler $$gateway 2>/dev/null; wait' INT TERM; \
	target/release/settler & settler=$$!; \
	target/release/gateway & gateway=$$!; \
	wait -n $$settler $$gateway; status=$$?; \
	kill -TERM $$settler $$gateway 2>/dev/null; wait; exit $$status

## test: everything the project checks (formatting, lints, unit and integration tests)
test: services lint clean-test-databases
	@# The live-feed tests hold a thousand streams open: lift the soft limit on open files.
	mkdir -p target
	ulimit -n "$$(ulimit -Hn)"; cargo test --workspace --locked 2>&1 | tee target/test-output.txt
	$(MAKE) --no-print-directory loadtest-smoke
	@# One closing line for the whole run: every cargo test binary, plus the load test smoke.
	@awk '/^test result:/ { passed += $$4; failed += $$6 } END { printf "tests: %d passed, %d failed\n", passed + 1, failed }' target/test-output.txt

build:
	cargo build --release --locked -p gateway -p settler

## bench: the performance figures against DESIGN.md's targets (several minutes, not part of test);
## prints one table and writes it, with charts, to target/bench/
BENCH_OUT ?= $(CURDIR)/target/bench
export BENCH_OUT
bench: services
	cargo build --release --locked -p gateway -p loadtest
	mkdir -p "$(BENCH_OUT)"
	BENCH_BOOKINGS=$${BENCH_BOOKINGS:-50000} BENCH_RESULT="$(BENCH_OUT)/settle.json" \
		cargo bench --locked -p settler --bench settle
	@# The fan-out holds tens of thousands of sockets: lift the soft limit on open files.
	ulimit -n "$$(ulimit -Hn)"; RUST_BACKTRACE=0 target/release/bench

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

## deps: Debian packages the services and tests need
deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	command -v psql >/dev/null || missing="$$missing postgresql-client"; \
	command -v pg_isready >/dev/null || missing="$$missing postgresql-client"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

services: redis postgres

redis: deps
	@if redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
		echo "redis: answering on $(REDIS_PORT)"; \
	else \
		echo "redis: starting on $(REDIS_PORT)"; \
		mkdir -p target/redis; \
		redis-server --daemonize yes --bind 127.0.0.1 --port $(REDIS_PORT) \
			--dir "$(CURDIR)/target/redis" --appendonly yes --logfile "$(CURDIR)/target/redis/redis.log"; \
		for _ in $$(seq 50); do redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done; \
		redis-cli -p $(REDIS_PORT) ping >/dev/null; \
	fi

# Postgres: use the one answering on 127.0.0.1:5432; otherwise install and start Debian's cluster
# and let the local postgres user in without a password (a development machine).
postgres: deps
	@if pg_isready -q -h $(PG_HOST) -p $(PG_PORT); then \
		echo "postgres: answering on $(PG_PORT)"; \
	else \
		if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then \
			echo "postgres: installing"; \
			$(SUDO) apt-get update -qq; \
			DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; \
		fi; \
		version=$$(ls /etc/postgresql | sort -V | tail -n1); \
		hba=/etc/postgresql/$$version/main/pg_hba.conf; \
		if ! $(SUDO) grep -Eq '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' $$hba; then \
			echo "postgres: trusting local TCP connections in $$hba"; \
			$(SUDO) sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' $$hba; \
		fi; \
		echo "postgres: starting cluster $$version/main"; \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$version main start || \
			$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$version main reload; \
		for _ in $$(seq 100); do pg_isready -q -h $(PG_HOST) -p $(PG_PORT) && break; sleep 0.1; done; \
		pg_isready -h $(PG_HOST) -p $(PG_PORT); \
	fi

# Databases of earlier test runs that stopped before cleaning up after themselves.
clean-test-databases: postgres
	@psql -h $(PG_HOST) -p $(PG_PORT) -U postgres -d postgres -tAc \
		"SELECT datname FROM pg_database WHERE datname LIKE 'gw\_test\_%'" | \
	while read -r name; do \
		psql -h $(PG_HOST) -p $(PG_PORT) -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$$name\" WITH (FORCE)"; \
	done

# A few seconds of the load test against a gateway of its own (own database and key prefix), so
# the load test cannot rot; `cargo run -p loadtest -- --help` for real runs.
LOADTEST_ADDR := 127.0.0.1:18123
loadtest-smoke: services
	cargo build --locked -p gateway -p loadtest
	@db=gw_test_loadtest_$$$$; prefix=loadtest-$$$$; token=loadtest-smoke-admin-token; \
	GATEWAY_ADDR=$(LOADTEST_ADDR) DATABASE_URL="$${DATABASE_URL%/*}/$$db" KEY_PREFIX=$$prefix \
		ADMIN_TOKEN=$$token SEED_DEMO=false RATE_LIMIT_PER_IP=0 BOOKING_LIMIT_PER_IP=0 RUST_LOG=warn \
		target/debug/gateway & gateway=$$!; \
	trap 'kill $$gateway 2>/dev/null; wait $$gateway 2>/dev/null; \
		redis-cli --scan --pattern "{$$prefix:*" | xargs -r redis-cli del >/dev/null; \
		psql -h $(PG_HOST) -p $(PG_PORT) -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$$db\" WITH (FORCE)"' EXIT; \
	for _ in $$(seq 300); do curl -sf http://$(LOADTEST_ADDR)/api/health/ready >/dev/null && break; sleep 0.1; done; \
	ADMIN_TOKEN=$$token target/debug/loadtest --host http://$(LOADTEST_ADDR) \
		--users 8 --increase-rate 8 --run-time 3s --quiet
