#!/usr/bin/env bash
# Build the micanon image from this checkout with podman (the Dockerfile at the repo root).
# Makes the debian:bookworm-slim base first when the machine cannot pull it (build-base.sh).
# Prints the build time and the image size. Extra arguments go to `podman build`, e.g.
#   scripts/container/build.sh --build-arg MICANON_SKIP_ATLAS=1
#
# Tags: $MICANON_IMAGE:<package.json version> and $MICANON_IMAGE:latest (default localhost/micanon).
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

setup_podman
if ! podman image exists docker.io/library/debian:bookworm-slim && ! podman pull -q docker.io/library/debian:bookworm-slim >/dev/null 2>&1; then
  "$(dirname "$0")/build-base.sh"
fi

mapfile -t ca_args < <(ca_build_args)
revision=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
started=$(date +%s)
say "building $image:$version from $repo_root"
podman build \
  --layers \
  "${ca_args[@]}" \
  --build-arg "MICANON_VERSION=$version" \
  --build-arg "VCS_REF=$revision" \
  --build-arg "BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$image:$version" -t "$image:latest" \
  "$@" \
  "$repo_root"
size=$(podman image inspect --format '{{.Size}}' "$image:$version")
say "built $image:$version in $(elapsed "$started"), $((size / 1000000)) MB"
