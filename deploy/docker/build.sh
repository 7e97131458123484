#!/usr/bin/env bash
# Builds the service images: deploy/docker/build.sh [SERVICE...] (all four when none is named).
# `make images` runs it. The build context is the repository root.
#   IMAGE_PREFIX  prefix of the image names (default `muaalem/`, e.g. `registry.example.com/muaalem/`)
#   IMAGE_TAG     tag (default: the version in pyproject.toml, which the k8s base also uses)
#   PLATFORM      target platform (default linux/amd64; torch's CUDA wheels are x86_64 here)
#   PUSH=1        push each image once built
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
all=(gateway asr alignment tajweed prosody)

die() {
    echo "deploy/docker/build.sh: $*" >&2
    exit 1
}

services=("$@")
if ((${#services[@]} == 0)); then
    services=("${all[@]}")
fi
for service in "${services[@]}"; do
    [[ " ${all[*]} " == *" $service "* ]] || die "unknown service '$service' (expected one of: ${all[*]})"
done

command -v docker >/dev/null 2>&1 ||
    die "the docker CLI is not installed; building images needs Docker (https://docs.docker.com/engine/install/)"
if ! docker info >/dev/null 2>&1; then
    die "no Docker engine reachable (\`docker info\` failed${DOCKER_HOST:+ for DOCKER_HOST=$DOCKER_HOST}); start dockerd or point DOCKER_HOST at one"
fi

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml" | head -n 1)"
[[ -n "$version" ]] || die "no version found in $root/pyproject.toml"
tag="${IMAGE_TAG:-$version}"
prefix="${IMAGE_PREFIX:-muaalem/}"
revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"

for service in "${services[@]}"; do
    image="$prefix$service:$tag"
    echo "building $image"
    # BuildKit: it reads <Dockerfile>.dockerignore and supports RUN --mount.
    DOCKER_BUILDKIT=1 docker build \
        --file "$root/deploy/docker/$service.Dockerfile" \
        --platform "${PLATFORM:-linux/amd64}" \
        --label "org.opencontainers.image.version=$tag" \
        --label "org.opencontainers.image.revision=$revision" \
        --tag "$image" \
        "$root"
    if [[ "${PUSH:-0}" == 1 ]]; then
        docker push "$image"
    fi
done
