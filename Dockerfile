# syntax=docker/dockerfile:1
#
# Manifold's images, one target each (docs/images.md):
#
#   docker build --target gateway  -t ghcr.io/manifold-dev/manifold-gateway:dev .
#   docker build --target operator -t ghcr.io/manifold-dev/manifold-operator:dev .
#   docker build --target samples  -t ghcr.io/manifold-dev/manifold-samples:dev .
#
# `podman build` and `buildah bud` take the same arguments. Without --target the last stage,
# the gateway, is built. `samples` holds the quickstart's math and text MCP servers
# (examples/in-cluster, make e2e-kind).
#
# Each image holds its binary and nothing else, on distroless `cc-debian12:nonroot` (glibc,
# libgcc_s, CA certificates, /etc/passwd with `nonroot` 65532; no shell). It runs as
# 65532:65532 and writes nothing, so it runs on a read-only root filesystem (the chart sets
# readOnlyRootFilesystem and runAsUser 65532). The entrypoint is the binary itself: the chart
# passes arguments only (`run …` to the operator, `--kube …` to the gateway).
#
# The builder is Debian 12 (bookworm), the release the runtime's glibc comes from, so the
# binary runs with the glibc it was linked against.

ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS source
WORKDIR /src
COPY . .

# One build stage per binary, so `--target gateway` compiles the gateway alone, with the
# features `cargo build -p manifold-gateway` gives it (the binary the tests and benchmarks
# run). The cache mounts keep the registry and target/ across builds and between the stages
# (BuildKit, and buildah: 1.28 was checked); target/ is a cache, so the binary is copied out
# of it. The release profile keeps line tables (debug = "line-tables-only"): --strip-debug
# drops them (133 MB → 27.5 MB for the gateway) and keeps the symbols, so a backtrace still
# names its functions.
FROM source AS build-operator
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p manifold-operator --bin manifold-operator \
 && strip --strip-debug -o /manifold-operator target/release/manifold-operator

FROM source AS build-samples
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p manifold-samples --bin manifold-samples \
 && strip --strip-debug -o /manifold-samples target/release/manifold-samples

FROM source AS build-gateway
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p manifold-gateway --bin manifold-gateway \
 && strip --strip-debug -o /manifold-gateway target/release/manifold-gateway

FROM ${RUNTIME_IMAGE} AS operator
COPY --from=build-operator /manifold-operator /manifold-operator
USER 65532:65532
# admin (/healthz, /readyz, /metrics) at the chart's --admin-listen.
EXPOSE 9091
ENTRYPOINT ["/manifold-operator"]

FROM ${RUNTIME_IMAGE} AS samples
COPY --from=build-samples /manifold-samples /manifold-samples
USER 65532:65532
# math and text, at examples/in-cluster's --math 0.0.0.0:9301 --text 0.0.0.0:9302.
EXPOSE 9301 9302
ENTRYPOINT ["/manifold-samples"]

FROM ${RUNTIME_IMAGE} AS gateway
COPY --from=build-gateway /manifold-gateway /manifold-gateway
USER 65532:65532
# mcp and admin (/healthz, /readyz, /metrics) at the chart's --listen and --admin-listen.
EXPOSE 8080 9090
ENTRYPOINT ["/manifold-gateway"]
