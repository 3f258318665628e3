#!/usr/bin/env bash
# Regenerate python/requirements.lock (exact versions + sha256 of every wheel) from requirements.in.
set -euo pipefail
cd "$(dirname "$0")/../python"
tools=$(mktemp -d)
python3 -m venv "$tools"
"$tools/bin/pip" install --quiet pip-tools==7.6.2
"$tools/bin/pip-compile" --generate-hashes --strip-extras --no-header --allow-unsafe -o requirements.lock requirements.in
rm -rf "$tools"
