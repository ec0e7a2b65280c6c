# telegate container image.
#
#   docker build -t telegate:local --build-arg TELEGATE_REVISION=$(git rev-parse --short=12 HEAD) .
#   docker run --rm -p 8080:8080 telegate:local          # embedded config + public dev key (warns)
#   docker run --rm -p 8080:8080 -e KOTORMODSYNC_SIGNING_SECRET=... telegate:local
#
# Stage 1 builds a release binary on Debian bookworm (glibc); stage 2 copies
# it into distroless "cc" (glibc, libgcc, CA certificates; no shell, no
# package manager), running as the distroless nonroot user (65532).

# ---------------------------------------------------------------- build
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches examples \
 && echo 'fn main() {}' > src/main.rs \
 && echo '' > src/lib.rs \
 && echo 'fn main() {}' > benches/verify.rs \
 && cargo build --release --locked --bin telegate \
 && rm -rf src benches examples

COPY build.rs ./
COPY src ./src
COPY config ./config
# The image has no .git: {ns}_build_info{revision} comes from this argument
# (docker build --build-arg TELEGATE_REVISION=$(git rev-parse --short=12 HEAD)),
# "unknown" without it.
ARG TELEGATE_REVISION=
COPY benches ./benches
COPY examples ./examples
# Make sure cargo sees the real sources as newer than the stub build.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin telegate \
 && install -D -m 0755 target/release/telegate /out/usr/local/bin/telegate \
 && install -D -m 0644 config/telegate.toml /out/app/config/telegate.toml \
 && install -D -m 0644 config/dev-signing.key /out/app/config/dev-signing.key \
 && mkdir -p /out-data/spool \
 && install -d -m 0700 /out/app/data

# ---------------------------------------------------------------- runtime
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=build /out/ /
# The ingest spool's folder ([spool] dir), owned by the runtime user so a
# fresh named volume mounted there inherits that ownership.
COPY --from=build --chown=65532:65532 /out-data/ /var/lib/telegate/
# The embedded default keeps its session store in ./data (sessions.data_dir):
# writable by the user the gateway runs as; mount a volume there to keep it.
COPY --from=build --chown=nonroot:nonroot /out/app/data /app/data

# The embedded default config resolves relative key files against ./config,
# so /app/config holds the same layout as the repository: the image runs out
# of the box with the public development key (it warns, loudly). Production
# sets its own keys: TELEGATE_CONFIG pointing at a mounted config, or
# TELEGATE_AUTH__KEYS, or KOTORMODSYNC_SIGNING_SECRET (which replaces the
# development key). See deploy/docker-compose.yml and docs/operations.md.
WORKDIR /app

# Inside a container the gateway must listen beyond loopback; telegate only
# believes X-Forwarded-For from TELEGATE_TRUSTED_PROXIES (default: loopback).
ENV TELEGATE_LISTEN=0.0.0.0:8080 \
    TELEGATE_LOG__FORMAT=json

USER nonroot:nonroot
# 8080 clients (listen), 9091 operations (ops_listen, when set), 4317
# OTLP/gRPC (ingest.grpc_listen, when set).
EXPOSE 8080 9091 4317

# No shell or curl in distroless: the binary checks GET /health itself.
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/telegate", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/telegate"]
CMD ["serve"]
