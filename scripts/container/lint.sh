#!/usr/bin/env bash
# Lint the container recipes without building them: shellcheck on the bodies of the
# Singularity.def sections that are shell (%post, %environment, %runscript, %test), on every
# Dockerfile RUN instruction, and on the scripts in this folder; the Dockerfile itself with the
# npm package dockerfile-utils (hadolint is not installable from Debian or npm).
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

need_tools shellcheck=shellcheck
lint_dir="$state_dir/lint"
rm -rf "$lint_dir" && mkdir -p "$lint_dir"

# Singularity.def: one file per shell section. Apptainer substitutes {{ VAR }} before running
# them; a placeholder value keeps shellcheck's parser happy.
awk -v dir="$lint_dir" '
  /^%[a-z]+/ { section = substr($1, 2); file = ""; if (section ~ /^(post|environment|runscript|test)$/) { file = dir "/def-" section ".sh"; print "#!/bin/sh" > file } ; next }
  file != "" { gsub(/\{\{ *[A-Z_]+ *\}\}/, "TEMPLATE_VALUE"); print > file }
' "$repo_root/Singularity.def"

# Dockerfile: each RUN (continuation lines joined) becomes a script; ARG/ENV names are declared
# so shellcheck does not flag them as unassigned.
awk -v dir="$lint_dir" '
  /^(ARG|ENV) / { split($2, kv, "="); vars = vars kv[1] "=\"\"\n" }
  /^RUN / { body = substr($0, 5); n++; cont = /\\$/; if (!cont) { emit() } ; next }
  cont { body = body "\n" $0; cont = /\\$/; if (!cont) { emit() } }
  function emit(  file) { file = sprintf("%s/dockerfile-run-%02d.sh", dir, n); printf "#!/bin/sh\n# shellcheck disable=SC2034\n%s%s\n", vars, body > file; close(file) }
' "$repo_root/Dockerfile"

status=0
for file in "$lint_dir"/*.sh; do
  shellcheck -s sh "$file" || { say "in $(basename "$file")"; status=1; }
done
shellcheck -x -P SCRIPTDIR "$repo_root"/scripts/container/*.sh || status=1
# dockerfile-utils exits 0 on findings; any output is one.
findings=$(cd "$repo_root" && npx -y dockerfile-utils@0.16.3 lint Dockerfile 2>&1) || status=1
[ -z "$findings" ] || { printf '%s\n' "$findings" >&2; status=1; }
[ "$status" = 0 ] && say "ok: $(find "$lint_dir" -name '*.sh' | wc -l) recipe bodies and $(find "$repo_root/scripts/container" -name '*.sh' | wc -l) scripts pass shellcheck; dockerfile-utils finds nothing"
exit "$status"
