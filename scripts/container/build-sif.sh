#!/usr/bin/env bash
# Build micanon_<version>.sif from the podman image with Apptainer, and test it.
# Debian bookworm has no apptainer; sid has 1.4.x, so Apptainer runs from a debootstrapped sid
# root filesystem inside a privileged podman container (see docs/containers.md). The image is
# handed over as a docker archive (Singularity.def: Bootstrap docker-archive).
#
# Usage: scripts/container/build-sif.sh [--participant] [--no-build]
#   --participant  also anonymize person A with `apptainer run --cleanenv --containall` as uid 1000
#   --no-build     test the SIF already built (in the state folder) instead of building it
# Output: $MICANON_CONTAINER_STATE/micanon_<version>.sif (default /tmp/micanon-container).
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

participant=0 build=1
for arg in "$@"; do
  case "$arg" in
    --participant) participant=1 ;;
    --no-build) build=0 ;;
    *) die "unknown argument $arg (usage: $0 [--participant] [--no-build])" ;;
  esac
done

setup_podman
img="$image:$version"
podman image exists "$img" || die "no image $img: run scripts/container/build.sh first"
started=$(date +%s)

# A sid root filesystem with apptainer, made once and kept in the state folder.
sidroot="$state_dir/sidroot"
if [ ! -x "$sidroot/usr/bin/apptainer" ]; then
  need_tools debootstrap=debootstrap
  if grep -q " $sidroot/" /proc/mounts; then die "$sidroot still has mounts; unmount them first"; fi
  rm -rf "$sidroot"
  say "debootstrap sid (for apptainer)"
  debootstrap --variant=minbase sid "$sidroot" http://deb.debian.org/debian >"$state_dir/debootstrap-sid.log" 2>&1 ||
    die "debootstrap sid failed; see $state_dir/debootstrap-sid.log"
  cp /etc/resolv.conf "$sidroot/etc/resolv.conf"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$sidroot/etc/hosts"
  chroot "$sidroot" sh -c 'apt-get -o Acquire::Check-Valid-Until=false -qq update &&
    DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false -qq install -y --no-install-recommends apptainer squashfuse util-linux >/dev/null' ||
    die "could not install apptainer in $sidroot"
  say "apptainer $(chroot "$sidroot" apptainer --version) ready ($(elapsed "$started"))"
fi

# An ordinary user to run the SIF as, as on a cluster.
grep -q '^micanon-test:' "$sidroot/etc/passwd" || chroot "$sidroot" useradd --uid 1000 --create-home micanon-test

work="$sidroot/work"
sif="micanon_$version.sif"
rm -rf "$work" && mkdir -p "$work"
# Never leave the archive or person A's copy and outputs behind, whatever fails.
trap 'rm -rf "$work/micanon.tar" "$work/bids" "$work/out" "$work/scratch"' EXIT
if [ "$build" = 1 ]; then
  say "saving $img as a docker archive"
  podman save -q --format docker-archive -o "$work/micanon.tar" "$img"
  cp "$repo_root/Singularity.def" "$work/Singularity.def"
  t0=$(date +%s)
  podman run --rm --privileged --network host --rootfs "$sidroot" sh -c \
    "cd /work && apptainer -q build --notest --build-arg VERSION=$version $sif Singularity.def" ||
    die "apptainer build failed"
  say "built $sif in $(elapsed "$t0"), $(du -m "$work/$sif" | cut -f1) MB"
else
  [ -f "$state_dir/$sif" ] || die "no $state_dir/$sif to test (build it without --no-build)"
  mv "$state_dir/$sif" "$work/$sif"
fi
chmod a+r "$work/$sif"

# `apptainer test` and runs as that user (fuse for the squashfuse mounts).
as_user() { podman run --rm --privileged --network host --rootfs "$sidroot" sh -c \
  "chmod 666 /dev/fuse; cd /work && setpriv --reuid=1000 --regid=1000 --clear-groups env HOME=/home/micanon-test $1"; }
t0=$(date +%s)
as_user "apptainer test $sif" || die "apptainer test failed"
say "apptainer test passed ($(elapsed "$t0"))"

if [ "$participant" = 1 ]; then
  shared=${MICANON_SHARED_DATA:-$repo_root/../shared/data}
  mkdir -p "$work/bids" "$work/out" "$work/scratch"
  cp -r "$shared/bids-person-a/." "$work/bids/" && chmod -R a+rX "$work/bids" && chmod 0777 "$work/out" "$work/scratch"
  t0=$(date +%s)
  as_user "apptainer run --cleanenv --containall -B /work/bids:/bids:ro -B /work/out:/out -B /work/scratch:/scratch \
    $sif /bids /out participant --participant-label A --nthreads 2 -w /scratch" || die "apptainer participant run failed"
  grep -q '"Type": *"apptainer"' "$work/out/dataset_description.json" || die "dataset_description.json does not record apptainer"
  say "apptainer participant run passed ($(elapsed "$t0")): $(cd "$work/out" && find sub-* -name '*.nii.gz' | wc -l) images"
fi

mv "$work/$sif" "$state_dir/$sif"
say "$state_dir/$sif ready ($(elapsed "$started"))"
