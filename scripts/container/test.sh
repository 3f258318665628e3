#!/usr/bin/env bash
# The container test: build the image from this checkout, check its entry points, anonymize
# person A in a read-only container as an unprivileged user (with and without a writable /tmp),
# and compare with a native run of the same checkout (same atlas, one thread): the anonymized
# images and sidecars must be the same bytes.
#
# Usage: scripts/container/test.sh [--no-build] [--no-native]
#   --no-build    test the image already tagged $MICANON_IMAGE:<version>
#   --no-native   skip the native run and the comparison
# Environment: MICANON_SHARED_DATA (default <repo>/../shared/data), MICANON_TEST_METHODS
# (default "deface"), MICANON_TEST_THREADS (threads of the no-/tmp run, default 2), MICANON_CONTAINER_KEEP=1 keeps the
# scratch folder. Needs podman as root (the machines' set-up; see docs/containers.md).
# Exit 0 only when every check passed; the summary lists each check.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

build=1 native=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --no-native) native=0 ;;
    *) die "unknown argument $arg (usage: $0 [--no-build] [--no-native])" ;;
  esac
done
read -r -a methods <<<"${MICANON_TEST_METHODS:-deface}"
threads=${MICANON_TEST_THREADS:-2}
shared=${MICANON_SHARED_DATA:-$repo_root/../shared/data}
dataset="$shared/bids-person-a"
[ -d "$dataset" ] || die "$dataset is absent: the container test needs person A (set MICANON_SHARED_DATA)"

setup_podman
started=$(date +%s)
if [ "$build" = 1 ]; then "$(dirname "$0")/build.sh"; fi
build_time=$(elapsed "$started")
img="$image:$version"
podman image exists "$img" || die "no image $img (run scripts/container/build.sh)"

scratch=$(mktemp -d "${state_dir}/test.XXXXXX")
# shellcheck disable=SC2317  # called by the trap
cleanup() { if [ "${MICANON_CONTAINER_KEEP:-0}" = 1 ]; then say "kept $scratch"; else rm -rf "$scratch"; fi; }
trap cleanup EXIT

results=()
failed=0
pass() { results+=("ok      $1"); say "ok: $1"; }
fail() { results+=("FAILED  $1"); say "FAILED: $1"; failed=1; }
check() { # check NAME COMMAND...: passes when COMMAND exits 0
  local name=$1; shift
  if "$@" >"$scratch/check.log" 2>&1; then pass "$name"; else fail "$name"; tail -n 20 "$scratch/check.log" >&2; fi
}

# The data must be readable by uid 1000; the shared folder is, a private copy is made otherwise.
bids=$dataset
if find "$dataset" ! -perm -o+r -print -quit | grep -q .; then
  bids="$scratch/bids"
  cp -r "$dataset" "$bids" && chmod -R a+rX "$bids"
fi

# A Docker-like read-only run as uid 1000 (podman also mounts a tmpfs on /tmp unless told not to).
run_ro() { podman run --rm --read-only -u 1000:1000 "$@"; }

# ---- entry points ----
check "micanon --version prints $version" test "$(run_ro "$img" --version)" = "$version"
check "/version holds $version" test "$(run_ro --entrypoint cat "$img" /version)" = "$version"
check "micanon --bids-exec-spec prints bids_app_spec.json" \
  bash -c "podman run --rm --read-only '$img' --bids-exec-spec | cmp - '$repo_root/bids_app_spec.json'"
check "micanon doctor passes as an arbitrary user (-u 54321:54321)" \
  podman run --rm --read-only -u 54321:54321 "$img" doctor
check "micapipe_anonymize is on PATH" run_ro --entrypoint micapipe_anonymize "$img" --help
check "the image runs as a non-root user by default" \
  bash -c "[ \"\$(podman run --rm --entrypoint id '$img' -u)\" != 0 ]"

# ---- one participant, read-only, as the BIDS Apps spec runs it ----
participant() { # participant NAME OUT WORK THREADS [podman options...]
  local name=$1 out=$2 work=$3 n=$4; shift 4
  mkdir -p "$out" "$work" && chmod 0777 "$out" "$work"
  local t0; t0=$(date +%s)
  if podman run --rm --read-only -u 1000:1000 "$@" \
      -v "$bids:/bids:ro" -v "$out:/out" -v "$work:/work" "$img" \
      /bids /out participant --participant_label A --method "${methods[@]}" --nthreads "$n" -w /work \
      >"$out.log" 2>&1; then
    pass "$name exits 0 ($(elapsed "$t0"))"
  else
    fail "$name exits 0 (exit $?, $(elapsed "$t0"))"; tail -n 30 "$out.log" >&2
  fi
  local inputs absent=0 image method stem
  inputs=$(cd "$bids" && find sub-A -path '*/anat/*.nii*' | sort)
  for image in $inputs; do
    for method in "${methods[@]}"; do
      stem=${image%%.nii*}
      [ -s "$out/${stem%_*}_desc-${method}d_${stem##*_}.nii.gz" ] || { say "missing output for $image ($method)"; absent=1; }
    done
  done
  check "$name wrote every anonymized image" test -n "$inputs" -a "$absent" = 0
  check "$name records the container in dataset_description.json" grep -q '"Type": *"docker"' "$out/dataset_description.json"
  check "$name leaves the work folder empty" test -z "$(ls -A "$work")"
}

# The same run natively (same checkout, the image's atlas, one thread), beside the container's
# one-thread run. One thread because ANTs' multi-threaded registration is not reproducible even
# natively (two native runs at --nthreads 2 differ at the face-ROI edge); at one it is.
native_pid=
if [ "$native" = 1 ]; then
  if [ ! -x "$repo_root/.venv/bin/python" ] || [ ! -f "$repo_root/dist/cli/micanon.js" ]; then
    fail "native comparison (run \`npm run setup\` first: no .venv or dist/)"
    native=0
  else
    (cd "$repo_root" && npm run --silent build) # dist/ as the image has it: built from this checkout
    container=$(podman create "$img")
    podman cp "$container:/opt/micanon/.atlas/micanon-head-v1" "$scratch/atlas" >/dev/null
    podman rm "$container" >/dev/null
    native_started=$(date +%s)
    MICANON_ATLAS="$scratch/atlas" node "$repo_root/bin/micanon.js" "$bids" "$scratch/native" participant \
      --participant_label A --method "${methods[@]}" --nthreads 1 -w "$scratch/native-work" >"$scratch/native.log" 2>&1 &
    native_pid=$!
  fi
fi
participant "participant run (--read-only, tmpfs /tmp, 1 thread)" "$scratch/out" "$scratch/work" 1
if [ -n "$native_pid" ]; then
  if wait "$native_pid"; then pass "native run exits 0 ($(elapsed "$native_started"))"; else fail "native run exits 0"; tail -n 30 "$scratch/native.log" >&2; fi
  same=0 differ=()
  while IFS= read -r rel; do
    if cmp -s "$scratch/out/$rel" "$scratch/native/$rel"; then same=$((same + 1)); else differ+=("$rel"); fi
  # The QC pages (sub-*.html) carry the time they were made, so they are compared without it.
  done < <(cd "$scratch/out" && find sub-* -type f ! -name '*.html' | sort)
  for page in "$scratch"/out/sub-*.html; do
    rel=${page#"$scratch/out/"}
    if cmp -s <(sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z//g' "$page") \
              <(sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z//g' "$scratch/native/$rel"); then
      same=$((same + 1))
    else
      differ+=("$rel")
    fi
  done
  check "container and native outputs are the same bytes ($same files; differ: ${differ[*]:-none})" test "$same" -gt 0 -a "${#differ[@]}" = 0
fi
# Docker's --read-only: no writable /tmp at all; only -w and the output folder may be written.
participant "participant run (--read-only, no writable /tmp, $threads threads)" "$scratch/out-strict" "$scratch/work-strict" "$threads" --read-only-tmpfs=false

size=$(podman image inspect --format '{{.Size}}' "$img")
printf '\n%s\n' "container test of $img ($((size / 1000000)) MB; build step $build_time; total $(elapsed "$started"))" >&2
printf '  %s\n' "${results[@]}" >&2
exit "$failed"
