# syntax=docker/dockerfile:1
# The apiguard image: one static binary (every command: up, proxy, pipeline,
# migrate, the operator's commands) and apiguard-probe, the health check
# that Docker and Kubernetes run inside it. Build from the repository root:
#
#   docker build -t apiguard/apiguard:dev .
#
# deploy/dockerfile_test.go runs the `go build` lines below as they are written.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-amd64} go build -trimpath -ldflags="-s -w" -o /out/apiguard ./cmd/apiguard
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-amd64} go build -trimpath -ldflags="-s -w" -o /out/apiguard-probe ./deploy/probe
# The working directory the non-root user owns: the proxy's spool
# (emit.spool_dir, var/spool) and an embedded NATS store (up) live under it.
RUN mkdir -p /out/data/var

# distroless/static: CA certificates, /etc/passwd with nonroot (65532),
# tzdata, and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/apiguard /usr/local/bin/apiguard
COPY --from=build /out/apiguard-probe /usr/local/bin/apiguard-probe
COPY --from=build --chown=65532:65532 /out/data /var/lib/apiguard
WORKDIR /var/lib/apiguard
USER 65532:65532
# 8080 the proxy, 9464 /metrics, 9465 the admin listener (docs/deploy.md).
EXPOSE 8080 9464 9465
ENTRYPOINT ["/usr/local/bin/apiguard"]
CMD ["--help"]
