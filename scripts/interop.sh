#!/usr/bin/env bash
# The interop matrix (appliance/interop): tcpincd against the host mode of
# package hostmode, as host A and as host B, every TEP x AEAD x frame size
# {100, 1400, 16384, 65000}, rekeying every 5 frames, half-close both ways,
# 3 % loss, a second connection that resumes, and TCP-ENO hosts behind the
# appliance. Needs root. It runs the whole matrix RUNS times in a row
# (default 3; a case that fails once fails the script). `go test ./...`
# runs a subset of it, scripts/test.sh the whole matrix once (INTEROP_FULL=
# here runs that subset).
#
#   ./scripts/interop.sh              # whole matrix, 3 runs
#   RUNS=1 ./scripts/interop.sh       # once
#   INTEROP_FULL= ./scripts/interop.sh   # the subset go test runs, 3 runs
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
export INTEROP_FULL=${INTEROP_FULL-1}
status=0
for i in $(seq 1 "$runs"); do
	echo "== interop run $i of $runs"
	start=$(date +%s)
	if ! go test -count=1 -timeout 60m -v -run 'TestInterop$' ./appliance/interop; then
		status=1
	fi
	echo "== interop run $i took $(( $(date +%s) - start )) s"
done
exit $status
