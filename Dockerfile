# The gateway and the settler (targets `gateway` and `settler`; the gateway's image carries the
# built web app), and the services docker-compose.yml runs, for machines that cannot pull them
# from a registry (targets `redis`, `postgres`, `loadbalancer`, `prometheus`, `mail`), all from one
# base.
#
#   DOCKER_BUILDKIT=1 docker build --target gateway -t tickets/gateway .
#
# BuildKit builds only the stages a target needs; the classic builder would build them all.
#
# RUST_IMAGE, NODE_IMAGE: the build stages' images. RUNTIME_IMAGE: the base of every image that
# runs. BUILD_FROM: `source` compiles the binaries and the web app here (the default); `host`
# copies the ones already built in target/release/ and web/dist/ (a machine without a registry,
# with the same Debian as RUNTIME_IMAGE).
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BUILD_FROM=source

# --- building from source: dependencies first (cached while Cargo.lock stands), then the code ---
FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.71
WORKDIR /src

FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS binaries
# The SQL is checked against the committed query data (`.sqlx/`), not a database.
ENV SQLX_OFFLINE=true
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p gateway -p settler
COPY . .
RUN cargo build --release --locked -p gateway -p settler \
    && mkdir /out && cp target/release/gateway target/release/settler /out/

FROM ${NODE_IMAGE} AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM scratch AS build-source
COPY --from=binaries /out/ /out/
COPY --from=web /web/dist /out/web

# --- or what the host built ---
FROM scratch AS build-host
COPY target/release/gateway target/release/settler /out/
COPY web/dist /out/web

# A stage of this file chosen by BUILD_FROM, not an image of a registry to tag (DL3006).
# hadolint ignore=DL3006
FROM build-${BUILD_FROM} AS build

# --- what runs: Debian, curl for the health check, a user of its own ---
FROM ${RUNTIME_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian's own curl of the release, without recommends; pinning a patch version would break the
# build on every Debian security update (hadolint DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tickets
USER 10001:10001

FROM runtime AS gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
COPY --from=build /out/web /srv/web
ENV GATEWAY_ADDR=0.0.0.0:8000 WEB_DIR=/srv/web RUST_LOG=info
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=2s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8000/api/health/ready"]
ENTRYPOINT ["/usr/local/bin/gateway"]

FROM runtime AS settler
COPY --from=build /out/settler /usr/local/bin/settler
ENV SETTLER_METRICS_ADDR=0.0.0.0:9100 RUST_LOG=info
EXPOSE 9100
HEALTHCHECK --interval=5s --timeout=2s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9100/health/ready"]
ENTRYPOINT ["/usr/local/bin/settler"]

# --- the stack's services from Debian's packages, for machines without a registry ---
FROM ${RUNTIME_IMAGE} AS services
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# As above: Debian's packages of the release (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        redis-server postgresql-15 haproxy prometheus python3-aiosmtpd ca-certificates \
    && rm -rf /var/lib/apt/lists/*

FROM services AS redis
# Its data directory, owned by its user: a new volume mounted there takes that ownership.
RUN install -d -o redis -g redis /data
# The user Debian's package made in this very image, so it resolves (DL3066).
# hadolint ignore=DL3066
USER redis
EXPOSE 6379
HEALTHCHECK --interval=2s --timeout=2s --retries=15 CMD ["redis-cli", "ping"]
ENTRYPOINT ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data"]

FROM services AS postgres
# A cluster trusting the stack's own network, made once in the image; its data in /data.
RUN install -d -o postgres -g postgres /data
# The user Debian's package made in this very image, so it resolves (DL3066).
# hadolint ignore=DL3066
USER postgres
ENV PGDATA=/data/pgdata
EXPOSE 5432
HEALTHCHECK --interval=2s --timeout=2s --retries=15 CMD ["pg_isready", "-h", "127.0.0.1"]
ENTRYPOINT ["bash", "-c", "[ -s \"$PGDATA/PG_VERSION\" ] || { /usr/lib/postgresql/15/bin/initdb -A trust -U postgres && echo 'host all all all trust' >> \"$PGDATA/pg_hba.conf\"; }; exec /usr/lib/postgresql/15/bin/postgres -c listen_addresses='*' -c unix_socket_directories=/tmp"]

FROM services AS loadbalancer
# The user Debian's package made in this very image, so it resolves (DL3066).
# hadolint ignore=DL3066
USER haproxy
EXPOSE 8000
ENTRYPOINT ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]

FROM services AS prometheus
# The user Debian's package made in this very image, so it resolves (DL3066).
# hadolint ignore=DL3066
USER prometheus
EXPOSE 9090
ENTRYPOINT ["prometheus", "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/tmp/prometheus", "--web.enable-lifecycle"]

FROM services AS mail
# An SMTP server that takes every mail and prints it whole to its log (`docker compose logs mail`).
# nobody:nogroup, as Debian numbers it in every image.
USER 65534:65534
EXPOSE 1025
# Unbuffered (-u): each mail reaches the log as it arrives, not when a buffer fills.
ENTRYPOINT ["python3", "-u", "-m", "aiosmtpd", "-n", "-l", "0.0.0.0:1025", "-c", "aiosmtpd.handlers.Debugging", "stdout"]
