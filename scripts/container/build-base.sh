#!/usr/bin/env bash
# Make `debian:bookworm-slim` resolvable on a machine that cannot reach Docker Hub: debootstrap a
# bookworm minbase, import it into podman as localhost/debian-bookworm-minbase and tag it
# docker.io/library/debian:bookworm-slim, so the Dockerfile's default BASE_IMAGE builds unchanged.
# Skipped when that tag already exists (MICANON_REBUILD_BASE=1 forces it).
#
# Usage: scripts/container/build-base.sh [mirror]   (default http://deb.debian.org/debian)
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

mirror=${1:-http://deb.debian.org/debian}
base_tag=docker.io/library/debian:bookworm-slim

setup_podman
if [ "${MICANON_REBUILD_BASE:-0}" != 1 ] && podman image exists "$base_tag"; then
  say "$base_tag already present (MICANON_REBUILD_BASE=1 to rebuild it)"
  exit 0
fi
need_tools debootstrap=debootstrap
started=$(date +%s)
rootfs="$state_dir/bookworm-rootfs"
# Never delete through a mount (a failed debootstrap can leave /proc mounted in the rootfs).
if grep -q " $rootfs/" /proc/mounts; then die "$rootfs still has mounts; unmount them first"; fi
rm -rf "$rootfs"
say "debootstrap bookworm minbase from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$state_dir/debootstrap.log" 2>&1 ||
  die "debootstrap failed; see $state_dir/debootstrap.log"
# Like the official slim image: no apt lists or caches, so layers above start clean.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - localhost/debian-bookworm-minbase:latest >/dev/null
podman tag localhost/debian-bookworm-minbase:latest "$base_tag"
rm -rf "$rootfs"
say "$base_tag ready ($(elapsed "$started"))"
