# syntax=docker/dockerfile:1
#
# pounce in a container: a multi-stage build, a distroless runtime (no shell,
# no curl), a non-root user, and signals delivered straight to pounce.
#
#   docker build -t pounce .
#   docker run --rm -p 8000:8000 \
#     --security-opt seccomp=deploy/seccomp-io-uring.json \
#     --ulimit memlock=-1 \
#     --stop-timeout 40 -e POUNCE_SHUTDOWN_TIMEOUT=30 \
#     pounce
#
# HTTPS: mount the certificate files and name them (the health check then
# speaks HTTPS too; deploy/README-deploying.md, "HTTPS", has the certbot side):
#   docker run ... -p 443:8443 -e POUNCE_PORT=8443 \
#     -v /etc/pounce/tls:/etc/pounce/tls:ro \
#     -e POUNCE_TLS_CERT=/etc/pounce/tls/fullchain.pem \
#     -e POUNCE_TLS_KEY=/etc/pounce/tls/privkey.pem \
#     pounce
# A renewal: replace the files, then `docker kill -s HUP <container>`.
#
# Docker 25+ (and containerd 2's RuntimeDefault) block io_uring in the default
# seccomp profile: deploy/seccomp-io-uring.json is Docker's default profile
# plus the three io_uring syscalls. Without it pounce exits 1 with
# "io_uring is blocked by a seccomp filter". deploy/README-deploying.md has
# the whole story for Docker, Kubernetes, ECS and systemd.

ARG RUST_VERSION=1.95

# ---- build ------------------------------------------------------------------
# Debian 12 (bookworm) on both sides, so the binary's glibc matches the runtime.
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY vendor ./vendor
# The same command CI checks (crates/pounce-cli/tests/deploy.rs): the release
# profile (fat LTO), only the binary's crate, and exactly the committed
# Cargo.lock. The cache mounts keep the registry and target between builds;
# target/ is a cache, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p pounce-cli --locked \
    && install -D -m 0755 target/release/pounce /out/pounce

# ---- run --------------------------------------------------------------------
# distroless/cc: glibc and libgcc, nothing else — no shell, so every command
# below is exec form, and the health check is pounce's own client. (The
# :nonroot variant; USER below picks uid 1000.)
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/pounce /usr/local/bin/pounce

# Configuration goes in the environment rather than in CMD flags, because
# `pounce healthcheck` (HEALTHCHECK below) reads the same variables: it finds
# the server's port and health path without arguments. 0.0.0.0 means "this
# container" to the health check.
ENV POUNCE_HOST=0.0.0.0 \
    POUNCE_PORT=8000 \
    POUNCE_HEALTH_CHECK_PATH=/health \
    POUNCE_HEALTHCHECK_TIMEOUT=2 \
    POUNCE_SHUTDOWN_TIMEOUT=8
# POUNCE_SHUTDOWN_TIMEOUT=8 fits `docker stop`'s default 10 s between SIGTERM
# and SIGKILL. Raise both together for longer requests:
#   docker run --stop-timeout 40 -e POUNCE_SHUTDOWN_TIMEOUT=30 ...
#   (compose: stop_grace_period: 40s). Kubernetes/ECS set their own values.

# uid 1000, no passwd entry needed; pounce needs no privileges (ports >= 1024).
USER 1000:1000
EXPOSE 8000

# pounce drains on SIGTERM (docker stop's signal): say so explicitly.
STOPSIGNAL SIGTERM

# The container is healthy while /health answers 2xx; it answers 503 from the
# moment SIGTERM arrives, so a draining container shows "unhealthy".
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["pounce", "healthcheck"]

# Exec form: pounce is PID 1 and receives SIGTERM itself (a shell would not
# forward it). pounce reaps nothing and spawns nothing, so no init is needed.
ENTRYPOINT ["pounce"]
CMD ["demo"]
