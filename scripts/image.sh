#!/usr/bin/env bash
# The operator's container image (deploy/Dockerfile): failover-operator as the entrypoint
# and the kubectl plugin kubectl-failover, non-root (UID 65532), built with podman.
#
#   scripts/image.sh build         build the release binaries on the host (cargo build
#                                  --release --locked), put them (debug info stripped) in a
#                                  small build context, build the runtime base if missing,
#                                  build the image from them (BINARIES=prebuilt), check that
#                                  both binaries start in it as UID 65532, print the image
#                                  name and its size
#   scripts/image.sh build --in-container
#                                  compile in the image build instead (stage `build` of
#                                  deploy/Dockerfile on BUILDER_IMAGE, the repository as
#                                  context, cargo caches as cache mounts); needs a Rust
#                                  builder image the engine can pull or has, and crates.io
#                                  from inside the build
#   scripts/image.sh runtime-base  build the runtime base localhost/failover-runtime:bookworm
#                                  (deploy/runtime-base.Dockerfile, from the debootstrap image
#                                  scripts/podman.sh setup builds) if missing; print its name
#   scripts/image.sh name          print the image reference
#
# Typical use:
#   scripts/podman.sh setup        # once: podman, its configuration, the Debian base image
#   scripts/image.sh build
#   podman run --rm "$(scripts/image.sh name)" --help
#
# On a machine with a registry, the default bases work without this script:
#   docker build -f deploy/Dockerfile --build-arg BINARIES=build -t failover-operator .
#
# The host build shares the cargo target directory of scripts/test.sh: CARGO_TARGET_DIR,
# default ~/.cache/failover-rs/target (FAILOVER_CACHE_DIR overrides the directory). The
# build context is .tools/image/context/.
#
# Environment: IMAGE_REPOSITORY (default localhost/failover-operator; the tag is the
# workspace version), RUNTIME_IMAGE (default localhost/failover-runtime:bookworm),
# BUILDER_IMAGE (for --in-container, default docker.io/library/rust:1.94-bookworm),
# FAILOVER_IMAGE_STRIP (default 1; 0 keeps the binaries' line tables, about 10 times
# larger), FAILOVER_IMAGE_BUILT (1: take the binaries already built in the target
# directory, as scripts/test.sh does after its one workspace build, instead of a
# `cargo build -p` whose own feature set would compile much of the tree again).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cache="${FAILOVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-rs}"
target="${CARGO_TARGET_DIR:-$cache/target}"
context="$root/.tools/image/context"
log_dir="$root/.tools/image"
repository="${IMAGE_REPOSITORY:-localhost/failover-operator}"
runtime_base="localhost/failover-runtime:bookworm"
runtime_image="${RUNTIME_IMAGE:-$runtime_base}"
builder_image="${BUILDER_IMAGE:-docker.io/library/rust:1.94-bookworm}"
debian_image="localhost/debian:bookworm"

die() {
    echo "image.sh: $*" >&2
    exit 1
}

log() {
    echo "image.sh: $*" >&2
}

# The workspace version ([workspace.package] in Cargo.toml).
version() {
    local v
    v="$(awk '/^\[/ { section = $0 } section == "[workspace.package]" && $1 == "version" {
            gsub(/"/, "", $3); print $3; exit }' Cargo.toml)"
    [[ -n "$v" ]] || die "no version in [workspace.package] of Cargo.toml"
    echo "$v"
}

name() {
    echo "$repository:$(version)"
}

revision() {
    git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown
}

need_podman() {
    command -v podman >/dev/null || die "podman is not installed: run scripts/podman.sh setup"
}

runtime_base() {
    need_podman
    if ! podman image exists "$runtime_base"; then
        podman image exists "$debian_image" || "$root/scripts/podman.sh" setup
        log "building $runtime_base"
        mkdir -p "$log_dir"
        podman build -f deploy/runtime-base.Dockerfile --build-arg "DEBIAN_IMAGE=$debian_image" \
            -t "$runtime_base" deploy >"$log_dir/runtime-base.log" 2>&1 ||
            die "building $runtime_base failed (see $log_dir/runtime-base.log)"
    fi
    echo "$runtime_base"
}

# Both binaries start in the image, as the image's user (65532).
check() {
    local image="$1" user out
    user="$(podman image inspect --format '{{.Config.User}}' "$image")"
    [[ "$user" == 65532* ]] || die "$image runs as '$user', not 65532"
    out="$(podman run --rm "$image" --help 2>&1)" || die "failover-operator --help failed in $image:
$out"
    out="$(podman run --rm --entrypoint /usr/local/bin/kubectl-failover "$image" --help 2>&1)" ||
        die "kubectl-failover --help failed in $image:
$out"
    log "checked: failover-operator --help and kubectl-failover --help run in $image as $user"
}

report() {
    local image="$1" size
    size="$(podman image inspect --format '{{.Size}}' "$image")"
    log "built $image: $((size / 1000000)) MB ($size bytes) in ${SECONDS}s"
    echo "$image"
}

build_prebuilt() {
    need_podman
    local image v
    image="$(name)"
    v="$(version)"
    if [[ "${FAILOVER_IMAGE_BUILT:-0}" == 1 ]]; then
        log "using the release binaries already in $target/release (FAILOVER_IMAGE_BUILT=1)"
    else
        log "cargo build --release --locked -p failover-operator -p failover-cli (target $target)"
        CARGO_TARGET_DIR="$target" cargo build --release --locked -p failover-operator -p failover-cli
    fi
    rm -rf "$context"
    mkdir -p "$context/prebuilt"
    local bin
    for bin in failover-operator kubectl-failover; do
        [[ -x "$target/release/$bin" ]] || die "$target/release/$bin is missing"
        if [[ "${FAILOVER_IMAGE_STRIP:-1}" == 1 ]]; then
            # The line tables make the binaries ~200 MB; symbols stay, for backtraces.
            objcopy --strip-debug "$target/release/$bin" "$context/prebuilt/$bin"
        else
            cp "$target/release/$bin" "$context/prebuilt/$bin"
        fi
    done
    [[ "$runtime_image" != "$runtime_base" ]] || runtime_base >/dev/null
    log "building $image on $runtime_image"
    mkdir -p "$log_dir"
    podman build -f deploy/Dockerfile \
        --build-arg BINARIES=prebuilt \
        --build-arg "RUNTIME_IMAGE=$runtime_image" \
        --build-arg "VERSION=$v" \
        --build-arg "REVISION=$(revision)" \
        -t "$image" "$context" >"$log_dir/build.log" 2>&1 ||
        die "podman build failed (see $log_dir/build.log)"
    check "$image"
    report "$image"
}

build_in_container() {
    need_podman
    local image v
    image="$(name)"
    v="$(version)"
    [[ "$runtime_image" != "$runtime_base" ]] || runtime_base >/dev/null
    log "building $image: compiling on $builder_image, on $runtime_image"
    podman build -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore \
        --build-arg BINARIES=build \
        --build-arg "BUILDER_IMAGE=$builder_image" \
        --build-arg "RUNTIME_IMAGE=$runtime_image" \
        --build-arg "VERSION=$v" \
        --build-arg "REVISION=$(revision)" \
        -t "$image" "$root"
    check "$image"
    report "$image"
}

case "${1:-}" in
    build)
        case "${2:-}" in
            "") build_prebuilt ;;
            --in-container) build_in_container ;;
            *)
                echo "usage: $0 build [--in-container]" >&2
                exit 2
                ;;
        esac
        ;;
    runtime-base) runtime_base ;;
    name) name ;;
    *)
        echo "usage: $0 build [--in-container]|runtime-base|name" >&2
        exit 2
        ;;
esac
