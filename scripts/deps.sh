#!/usr/bin/env bash
# What the demo and the tests need, installed when it is missing: Debian
# packages with apt-get (one `apt-get update` first), then the Go modules of
# go.mod. Says what it installs; installs nothing when all is present.
#
#   scripts/deps.sh demo    the demo's tools (scripts/demo.sh)
#   scripts/deps.sh test    everything the tests use (scripts/test.sh, .ci/run)
#
# Sourced or run; either way it exits (or returns) non-zero if something
# needed cannot be installed. TCPINC_NO_INSTALL=1 only reports what is missing.
set -euo pipefail

# tcpinc_has_pycrypto: a python3 that imports cryptography, on PATH or
# Debian's (where python3-cryptography goes).
tcpinc_has_pycrypto() {
	{ python3 -c 'import cryptography' || /usr/bin/python3 -c 'import cryptography'; } >/dev/null 2>&1
}

tcpinc_deps() {
	local want=${1:-test}
	# command -> Debian package. A command found on PATH counts as present,
	# whatever installed it.
	local -A pkg_of=(
		[ip]=iproute2 [nft]=nftables [ethtool]=ethtool [iperf3]=iperf3
		[curl]=curl [tshark]=tshark [python3]=python3 [ping]=iputils-ping
		[netsniff-ng]=netsniff-ng [chromium]=chromium [dpkg-deb]=dpkg
		[sha256sum]=coreutils [flock]=util-linux [make]=make [tayga]=tayga
		[git]=git [gcc]=gcc
	)
	local cmds
	case $want in
	# chromium is optional for the demo (it skips the browser check).
	demo) cmds="ip nft ethtool python3 curl iperf3 tshark sha256sum" ;;
	# The integration tests drive real tools in network namespaces; the
	# dissector and decode tests run tshark; the status page test runs
	# headless chromium; the package test runs make and dpkg-deb; tayga (an
	# IPv4/IPv6 translator) makes the IPv6 fragments of the fragment test;
	# test.sh and the docs tests list the tracked files with git (both walk
	# the tree where git cannot); go test -race builds with cgo (gcc).
	test) cmds="ip nft ethtool iperf3 curl tshark netsniff-ng ping python3 chromium dpkg-deb make sha256sum flock tayga git gcc" ;;
	*)
		echo "deps.sh: unknown set '$want' (demo or test)" >&2
		return 2
		;;
	esac

	local c missing=() pkgs=()
	for c in $cmds; do
		if ! command -v "$c" >/dev/null 2>&1; then
			missing+=("$c")
			pkgs+=("${pkg_of[$c]}")
		fi
	done
	# tcpcrypt's vector cross-check (appliance/tcpcrypt/testdata/crosscheck.py)
	# needs Python's cryptography package, in the python3 on PATH or Debian's.
	local pycrypto=0
	if [ "$want" = test ] && ! tcpinc_has_pycrypto; then
		pycrypto=1
		pkgs+=(python3-cryptography)
	fi
	if ((${#pkgs[@]} > 0)); then
		local what=("${missing[@]}")
		((pycrypto)) && what+=("python3's cryptography package")
		echo "deps: missing ${what[*]}; installing Debian packages: ${pkgs[*]}"
		if [ "${TCPINC_NO_INSTALL:-}" = 1 ]; then
			echo "deps: TCPINC_NO_INSTALL=1: not installing" >&2
			return 1
		fi
		if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
			echo "deps: cannot install (needs root and apt-get); install them and run again" >&2
			return 1
		fi
		export DEBIAN_FRONTEND=noninteractive
		echo "deps: apt-get update"
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
		for c in "${missing[@]}"; do
			command -v "$c" >/dev/null 2>&1 || {
				echo "deps: $c still missing after installing ${pkg_of[$c]}" >&2
				return 1
			}
		done
		if ((pycrypto)) && ! tcpinc_has_pycrypto; then
			echo "deps: python3 still cannot import cryptography after installing python3-cryptography" >&2
			return 1
		fi
		echo "deps: installed ${pkgs[*]}"
	fi

	# Go itself is not installed here: say where to get it.
	export PATH=$PATH:/usr/local/go/bin
	if ! command -v go >/dev/null 2>&1; then
		echo "deps: Go is not installed (https://go.dev/dl/, into /usr/local/go)" >&2
		return 1
	fi
	# Go modules: offline check first, so nothing is said when they are here.
	if ! GOPROXY=off go mod download >/dev/null 2>&1; then
		echo "deps: downloading the Go modules of go.mod (go mod download)"
		go mod download
	fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	cd "$(dirname "$0")/.."
	tcpinc_deps "$@"
fi
