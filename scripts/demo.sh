#!/usr/bin/env bash
# The demo (README): two enclaves, two appliances, real traffic, a capture of
# the untrusted link; as root. Flags go to cmd/tcpinc-demo (--ci: non-interactive).
set -euo pipefail
cd "$(dirname "$0")/.." && export PATH=$PATH:/usr/local/go/bin && exec go run ./cmd/tcpinc-demo "$@"
