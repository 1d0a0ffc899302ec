# The Chorus image: one static-ish binary (glibc only) on a distroless base, running as a
# non-root user with nothing else in the image (no shell, no package manager).
#
#   make dist                      # builds dist/chorus (release) on Debian 12, as CI does
#   docker build -t chorus:dev .   # copies dist/chorus; the build context is only that file
#
# The same binary runs every mode: `chorus gateway`, `chorus router`, `chorus migrate`,
# `chorus standalone`, and the `chorus send` / `chorus tail` client the Helm test uses.

# Stage 1: check that the binary runs on the runtime's C library (Debian 12, glibc 2.36)
# before it is shipped, so a binary built on a newer system fails here and not in a pod.
FROM debian:12-slim AS check
COPY dist/chorus /chorus
RUN /chorus --version

# Stage 2: the image. distroless/cc has glibc, libgcc and CA certificates, and its
# `nonroot` variant runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=check /chorus /usr/local/bin/chorus
USER 65532:65532
# Gateway (WebSocket, SSE, web app, /healthz, /readyz, /metrics), router gRPC, router HTTP.
EXPOSE 8080 7001 9101
ENTRYPOINT ["/usr/local/bin/chorus"]
CMD ["--help"]
