# syntax=docker/dockerfile:1
#
# One image for every zdr process: the controller (default entrypoint), the zdr-agent sidecar
# (`command: ["/usr/local/bin/zdr-agent"]`) and the kubectl plugin.
#
#   docker build -t ghcr.io/zdr-dev/zdr:dev .
#
# The binaries are static (x86_64-unknown-linux-musl): the final stage has no libc, no shell.
# ring (the TLS crypto of rustls) compiles C code, hence musl-tools and CC for the musl target.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
ARG TARGET=x86_64-unknown-linux-musl
# musl-tools is only needed to compile; the bookworm base tag pins its version well enough.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=musl-gcc \
    CARGO_TERM_COLOR=never
WORKDIR /src

# Everything the manifest names must exist for cargo to read it (the e2e target is declared
# explicitly); tests, examples and docs are not needed (see .dockerignore).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY e2e ./e2e

RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --target "${TARGET}" \
        --bin zdr-controller --bin zdr-agent --bin kubectl-zdr \
 && mkdir -p /out \
 && for bin in zdr-controller zdr-agent kubectl-zdr; do \
        cp "target/${TARGET}/release/${bin}" /out/ || exit 1; \
    done

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="zdr" \
      org.opencontainers.image.description="Kubernetes operator for zero-downtime rollouts (controller, zdr-agent sidecar, kubectl-zdr)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/zdr-dev/zdr"
COPY --from=builder /out/zdr-controller /out/zdr-agent /out/kubectl-zdr /usr/local/bin/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/zdr-controller"]
