#!/usr/bin/env bash
# The demo (README): two enclaves, two appliances, real traffic, a capture of
# the untrusted link; as root. Installs the tools it needs when they are
# missing (scripts/deps.sh). Flags go to cmd/tcpinc-demo (--ci: non-interactive).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
tcpinc_deps demo
exec go run ./cmd/tcpinc-demo "$@"
