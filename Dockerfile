# The egress gateway image: `egress gateway run` for the Deployments that
# `egress mesh enable-egress-gateway --kubeconfig ...` and `egress mesh manifests` create.
#
# Build:  docker build -t registry.example/egress:dev .
# Not built by this project's CI: no container engine runs on its development machines.

# Build stage: Debian's Rust image at the toolchain pinned in rust-toolchain.toml.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --profile dist --locked -p egress-cli --bin egress \
 && install -D -m 0755 target/dist/egress /out/egress

# Runtime stage: glibc and CA roots only, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/egress /usr/local/bin/egress
# Istio's proxy user and group, numeric so runAsNonRoot can verify it. The binary writes
# nothing to the image's filesystem, so readOnlyRootFilesystem: true works as is.
USER 1337:1337
ENTRYPOINT ["/usr/local/bin/egress"]
CMD ["--help"]
