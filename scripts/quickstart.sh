#!/usr/bin/env bash
# From a fresh Debian 12 machine to a running single-node broker on
# 127.0.0.1:9092, with its data in ./data: installs packages, builds, starts.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" release
cd "$root"
echo "==> starting Gregor on 127.0.0.1:9092 (data in $root/data; Ctrl-C stops it cleanly)"
exec "$root/build/gregor" server --config "$root/config/server.properties"
