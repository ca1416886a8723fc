#!/usr/bin/env bash
# The project's test command (README): format and vet checks, every Go test
# (integration tests in network namespaces need root), then a short run of
# every fuzz target. FUZZTIME sets how long each fuzz target runs.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then
	echo "gofmt would change:"; echo "$bad"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test"
# -p 1: integration tests share the machine's two cores and its network
# namespaces; running packages one at a time keeps them deterministic.
go test -count=1 -p 1 -timeout 45m ./...

echo "== fuzz (each target for $fuzztime)"
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		echo "-- $pkg $target"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
	done
done
echo "== all tests passed"
