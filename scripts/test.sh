#!/usr/bin/env bash
# The project's test command (README): installs what the tests need when it
# is missing (scripts/deps.sh: Debian packages, Go modules), then format and
# vet checks, every Go test, then a short run of every fuzz target for a
# fixed number of executions.
#
# It runs as root only: without root the integration tests (network
# namespaces, XDP, AF_XDP) skip, and a run that skipped them proves little.
# For the same reason a test that skips fails the run unless
# scripts/test-skips.txt names it with the reason (scripts/testreport).
#
# Fuzz budgets are execution counts, not durations: with a duration, Go 1.26's
# fuzz coordinator can end a healthy run with "context deadline exceeded" and
# no failing input (golang/go#75804, fixed in Go 1.27). A count never takes
# that path. FUZZTIME overrides every budget (a count such as 50000x, or a
# duration once the toolchain has the fix).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "test.sh: run me as root (sudo ./scripts/test.sh): without root the tests" >&2
	echo "that build network namespaces, XDP programs and AF_XDP sockets skip" >&2
	exit 1
fi

echo "== dependencies"
. scripts/deps.sh
tcpinc_deps test

# Targets that run a whole handshake or daemon config per input get smaller
# budgets so each takes about ten seconds on this project's 2-core machines.
declare -A budget=(
	[FuzzScript]=10000x
	[FuzzWorkerPassthrough]=10000x
	[FuzzWorkerEngine]=10000x
	[FuzzParse]=20000x
	[FuzzSegments]=20000x
	[FuzzHandle]=20000x
	[FuzzFragments]=50000x
	[FuzzDecodeConfig]=20000x
	[FuzzMerge]=30000x
)
default_budget=150000x

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then
	echo "gofmt would change:"; echo "$bad"; exit 1
fi

echo "== go vet"
go vet ./...

# report reads go test -json, prints the lines plain go test prints, and
# fails on a skipped test that scripts/test-skips.txt does not allow.
report() {
	go run ./scripts/testreport -module "$(go list -m)" scripts/test-skips.txt
}

echo "== go test"
# -p 1: integration tests share the machine's two cores and its network
# namespaces; running packages one at a time keeps them deterministic.
# INTEROP_FULL: the whole interop matrix (101 cases, about 4 minutes), not
# the 13-case subset: a change to rekeying once broke 18 honest cases that
# the subset passed.
INTEROP_FULL=1 go test -json -count=1 -p 1 -timeout 45m ./... | report

echo "== go test: the engine through ports that take super-frames"
# The engine's tests again, their gateways sending through ports with
# checksum and segmentation offload (the AF_PACKET backend's), whose
# super-frames are cut in software as the kernel does.
TCPINC_ENGINE_GSO=1 go test -json -count=1 ./appliance/engine | report

echo "== go test -race: the packages whose goroutines share state"
# Workers, hand-off lanes, the public-key pool, the control plane and the
# admin API run concurrently; the race detector watches their tests (about
# two minutes, most of it building). A race between a worker and a pool
# job once let a connection turn plain in the middle of its key exchange.
go test -race -json -count=1 ./appliance/ ./appliance/engine/ ./appliance/control/ \
	./appliance/admin/ ./appliance/tcpcrypt/ ./cryptopool/ ./flowtable/ | report

echo "== fuzz"
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		n=${FUZZTIME:-${budget[$target]:-$default_budget}}
		echo "-- $pkg $target ($n)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$n" "$pkg"
	done
done
echo "== all tests passed"
