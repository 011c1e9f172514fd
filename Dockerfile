# syntax=docker/dockerfile:1.7
# tiergate image: `make image` is the one place that builds it.
#
# Build: the release binary, with BuildKit caches for the registry and target.
# Runtime: distroless cc (glibc + libgcc, no shell, no package manager) as
# the distroless "nonroot" user 65532, the same uid the Deployment pins. The
# process writes nothing to its root filesystem (certificates and config come
# from mounted volumes), so it runs with readOnlyRootFilesystem: true.
# Pin both base images by digest in your registry mirror (Renovate/Dependabot
# keep them current).
ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tiergate \
 && install -D -m 0555 target/release/tiergate /out/tiergate

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="tiergate" \
      org.opencontainers.image.description="Kubernetes admission by namespace tier" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/tiergate /tiergate
USER 65532:65532
# 8443: admission webhook (HTTPS); 8080: /metrics, /livez, /readyz (HTTP).
EXPOSE 8443 8080
ENTRYPOINT ["/tiergate", "serve"]
