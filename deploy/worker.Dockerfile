# syntax=docker/dockerfile:1
# A GPU worker: patchsweep built with --features cuda on the CUDA devel image, run on the
# (smaller) CUDA runtime image, which carries the cuBLAS, cuRAND and NVRTC libraries that
# candle links at run time; the driver comes from the host (NVIDIA Container Toolkit).
# Build from the repository root (no GPU needed to build):
#   docker build -f deploy/worker.Dockerfile -t patchsweep-worker .
# CUDA_COMPUTE_CAP is the oldest GPU generation the kernels are compiled for: 80 (A100) runs on
# 80 and newer (L40S, H100, H200) through PTX; bf16 needs 80 or newer. The host driver must
# support CUDA_VERSION (12.4: driver 550 or newer).
ARG RUST_VERSION=1.95
ARG CUDA_VERSION=12.4.1
ARG UBUNTU=ubuntu22.04

FROM rust:${RUST_VERSION}-slim-bookworm AS rust

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
ARG CUDA_COMPUTE_CAP=80
# The Rust toolchain comes from the official image (its binaries need only an old glibc).
COPY --from=rust /usr/local/cargo /usr/local/cargo
COPY --from=rust /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo \
    RUSTUP_HOME=/usr/local/rustup \
    PATH=/usr/local/cargo/bin:/usr/local/cuda/bin:$PATH \
    CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP}
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=patchsweep-target-cuda \
    cargo build --release --locked --features cuda --bin patchsweep \
    && install -m 0755 target/release/patchsweep /usr/local/bin/patchsweep

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/patchsweep patchsweep \
    && install -d -o patchsweep -g patchsweep /var/cache/huggingface
COPY --from=build /usr/local/bin/patchsweep /usr/local/bin/patchsweep
COPY examples /opt/patchsweep/examples
USER 10001:10001
WORKDIR /var/lib/patchsweep
# Models come from the Hugging Face Hub into HF_HOME (mount a volume there); HF_TOKEN for
# gated repositories comes from a secret at run time.
ENV HF_HOME=/var/cache/huggingface \
    PATCHSWEEP_DEVICE=cuda:0 \
    PATCHSWEEP_HEALTH_LISTEN=0.0.0.0:50052 \
    PATCHSWEEP_METRICS_LISTEN=0.0.0.0:9091
# grpc.health.v1 for probes, and Prometheus metrics.
EXPOSE 50052 9091
# SIGTERM drains: the worker finishes its task or hands its lease back, then exits. Give it
# time (docker stop -t 600, stop_grace_period, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["patchsweep"]
CMD ["worker"]
