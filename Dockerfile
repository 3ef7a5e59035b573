# syntax=docker/dockerfile:1

# ---- Build stage: compile the release binary --------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependency layer: build a dummy crate from the manifests alone so the
# (slow) dependency compilation is cached until Cargo.toml/Cargo.lock change.
# The stubs tests/api/main.rs and benches/token.rs satisfy the explicit [[test]] and
# [[bench]] target paths.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/api benches \
 && echo 'fn main() {}' > src/main.rs \
 && echo '//! dependency-cache stub' > src/lib.rs \
 && echo 'fn main() {}' > tests/api/main.rs \
 && echo 'fn main() {}' > benches/token.rs \
 && cargo build --release --locked --bin obgate \
 && rm -rf src

# Real sources. migrations/ (sqlx::migrate!) and openapi/ (include_str!) are
# read at compile time. Drop the dummy crate's artifacts/fingerprints so cargo
# rebuilds obgate even if the copied files have older mtimes than the stub.
COPY src/ src/
COPY migrations/ migrations/
COPY openapi/ openapi/
RUN rm -rf target/release/.fingerprint/obgate-* \
           target/release/deps/obgate-* target/release/deps/libobgate-* \
 && cargo build --release --locked --bin obgate \
 && install -m 0755 target/release/obgate /usr/local/bin/obgate

# ---- Runtime stage: minimal Debian with just the binary ---------------------
FROM debian:bookworm-slim AS runtime

# CA roots for outbound TLS (e.g. postgres with sslmode=require).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Unprivileged user with a fixed uid; its home is the working dir, where the
# default sqlite://obgate.db would be created.
RUN groupadd --system --gid 10001 obgate \
 && useradd --system --uid 10001 --gid obgate --no-create-home \
            --home-dir /var/lib/obgate --shell /usr/sbin/nologin obgate \
 && mkdir -p /var/lib/obgate/spill \
 && chown -R obgate:obgate /var/lib/obgate

COPY --from=build /usr/local/bin/obgate /usr/local/bin/obgate

WORKDIR /var/lib/obgate
ENV OBGATE_LISTEN=0.0.0.0:8080
EXPOSE 8080

# No HEALTHCHECK: the image has no curl/wget. Orchestrators should probe
# GET /healthz (liveness) and GET /readyz (readiness) over HTTP instead.

USER obgate
ENTRYPOINT ["/usr/local/bin/obgate"]
CMD ["serve"]
