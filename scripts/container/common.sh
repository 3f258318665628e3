# shellcheck shell=bash
# Sourced by the scripts beside it: one place for the podman set-up every container script needs.
#
# Environment:
#   MICANON_CONTAINER_STATE  scratch folder for podman's config and build files (default /tmp/micanon-container)
#   MICANON_IMAGE            image name (default localhost/micanon); tagged :<version> and :latest
#   MICANON_HOST_CA          CA bundle passed into builds when the machine's HTTPS goes through a
#                            proxy with its own CA (default: /etc/ssl/certs/ca-certificates.crt if present;
#                            set to an empty string to pass none)
#   MICANON_NO_APT=1         never apt-get install podman & co (fail instead when missing)

set -euo pipefail

# Used by the scripts that source this file.
# shellcheck disable=SC2034
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state_dir=${MICANON_CONTAINER_STATE:-/tmp/micanon-container}
# shellcheck disable=SC2034
image=${MICANON_IMAGE:-localhost/micanon}
# shellcheck disable=SC2034
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$repo_root/package.json" | head -n 1)
host_ca=${MICANON_HOST_CA-/etc/ssl/certs/ca-certificates.crt}

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Install the Debian packages that provide the given commands, when any is missing.
# Usage: need_tools command=package ...
need_tools() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "${MICANON_NO_APT:-0}" = 1 ] && die "missing: ${missing[*]} (MICANON_NO_APT=1)"
  [ "$(id -u)" -eq 0 ] || die "missing: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# podman with runc and soft ulimits: crun fails on hybrid cgroups, and podman's default ulimits
# need CAP_SYS_RESOURCE, which these machines lack (see CONTAINERS.md).
setup_podman() {
  need_tools podman=podman runc=runc fuse-overlayfs=fuse-overlayfs slirp4netns=slirp4netns newuidmap=uidmap
  mkdir -p "$state_dir"
  if [ -z "${CONTAINERS_CONF:-}" ]; then
    printf '[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\n' \
      > "$state_dir/containers.conf"
    export CONTAINERS_CONF="$state_dir/containers.conf"
  fi
}

# Build arguments that hand the host CA bundle to npm, pip and Python inside RUN steps.
ca_build_args() {
  if [ -n "$host_ca" ] && [ -r "$host_ca" ]; then
    printf '%s\n' -v "$host_ca:/run/host-ca.crt:ro" \
      --build-arg NODE_EXTRA_CA_CERTS=/run/host-ca.crt \
      --build-arg PIP_CERT=/run/host-ca.crt \
      --build-arg SSL_CERT_FILE=/run/host-ca.crt \
      --build-arg CURL_CA_BUNDLE=/run/host-ca.crt
  fi
}

elapsed() { printf '%d s' "$(($(date +%s) - $1))"; }
