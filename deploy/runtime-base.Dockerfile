# A distroless-like runtime base for machines without a registry (no
# gcr.io/distroless/cc-debian12): only what the operator's binaries need at run time,
# taken from a Debian bookworm image.
#
#   podman build -f deploy/runtime-base.Dockerfile \
#       --build-arg DEBIAN_IMAGE=localhost/debian:bookworm \
#       -t localhost/failover-runtime:bookworm deploy
#
# (scripts/image.sh runtime-base does this; scripts/podman.sh setup builds
# localhost/debian:bookworm with debootstrap.) The image holds:
#   - the dynamic loader, libc, libm and libgcc_s: all the binaries link (`ldd`); glibc
#     2.36 has nss_files and nss_dns built in, so name resolution needs no other library;
#   - the CA bundle (/etc/ssl/certs/ca-certificates.crt) for TLS to the API server and AWS;
#   - /etc/passwd and /etc/group with root, nonroot (65532) and nobody, as distroless has;
#     /etc/nsswitch.conf, /etc/os-release, /tmp (1777), /home/nonroot (65532);
#   - the copyright files of the Debian packages the files come from.
# No shell, no package manager. It runs as 65532:65532.
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS rootfs
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
RUN set -eu; \
    r=/rootfs; \
    multiarch="$(uname -m)-linux-gnu"; \
    case "$(uname -m)" in \
        x86_64) loader=/lib64/ld-linux-x86-64.so.2 ;; \
        aarch64) loader=/lib/ld-linux-aarch64.so.1 ;; \
        *) echo "unsupported architecture $(uname -m)" >&2; exit 1 ;; \
    esac; \
    mkdir -p "$r/lib/$multiarch" "$r$(dirname "$loader")" "$r/etc/ssl/certs" "$r/tmp" \
        "$r/home/nonroot" "$r/root" "$r/usr/local/bin" "$r/usr/share/doc"; \
    for lib in libc.so.6 libm.so.6 libgcc_s.so.1; do \
        cp -L "/lib/$multiarch/$lib" "$r/lib/$multiarch/"; \
    done; \
    cp -L "$loader" "$r$loader"; \
    cp -L /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"; \
    cp -L /etc/os-release "$r/etc/os-release"; \
    for pkg in libc6 libgcc-s1 ca-certificates; do \
        mkdir -p "$r/usr/share/doc/$pkg"; \
        cp -L "/usr/share/doc/$pkg/copyright" "$r/usr/share/doc/$pkg/"; \
    done; \
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
        'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
        'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$r/etc/passwd"; \
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$r/etc/group"; \
    printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$r/etc/nsswitch.conf"; \
    chmod 1777 "$r/tmp"; \
    chmod 700 "$r/root"; \
    chown 65532:65532 "$r/home/nonroot"; \
    chmod 700 "$r/home/nonroot"

FROM scratch
COPY --from=rootfs /rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
LABEL org.opencontainers.image.title="failover-runtime" \
      org.opencontainers.image.description="Distroless-like Debian bookworm runtime: glibc, libgcc_s, CA certificates, nonroot user (65532)" \
      org.opencontainers.image.base.name="debian:bookworm" \
      org.opencontainers.image.licenses="LGPL-2.1-or-later AND GPL-3.0-or-later WITH GCC-exception-3.1 AND MPL-2.0"
