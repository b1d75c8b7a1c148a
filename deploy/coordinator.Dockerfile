# syntax=docker/dockerfile:1
# The coordinator (and the CLI: submit, status, watch, query) on Debian slim, CPU only.
# Build from the repository root:
#   docker build -f deploy/coordinator.Dockerfile -t patchsweep-coordinator .
ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS build
WORKDIR /src
COPY . .
# The target folder is a build cache, so the binary is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=patchsweep-target-cpu \
    cargo build --release --locked --bin patchsweep \
    && install -m 0755 target/release/patchsweep /usr/local/bin/patchsweep

FROM debian:${DEBIAN}-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/patchsweep patchsweep
COPY --from=build /usr/local/bin/patchsweep /usr/local/bin/patchsweep
COPY examples /opt/patchsweep/examples
USER 10001:10001
WORKDIR /var/lib/patchsweep
ENV PATCHSWEEP_LISTEN=0.0.0.0:50051 \
    PATCHSWEEP_METRICS_LISTEN=0.0.0.0:9090
# gRPC (SweepService, WorkerService, grpc.health.v1) and Prometheus metrics.
EXPOSE 50051 9090
ENTRYPOINT ["patchsweep"]
CMD ["coordinator"]
