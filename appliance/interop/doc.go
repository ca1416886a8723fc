// Package interop runs the appliance (tcpincd) against a second TCP-ENO and
// tcpcrypt state machine, the host mode of package hostmode (cmd/tcpinc-host),
// in the standard namespace topology: the appliance as
// host A and as host B, every TEP and AEAD, frame sizes from 100 to 65,000
// bytes, rekeying every 5 frames, half-close in both directions, 3 % loss on
// the untrusted network and resumption; plus hosts that speak TCP-ENO
// themselves behind the appliance, which then steps aside, and hosts whose
// Init messages carry bytes in the "ignored" field that receivers must skip. Each case
// compares the appliance's session ID and transcript (admin API) with the
// host's. Host mode shares the appliance's codecs (appliance/eno,
// appliance/tcpcrypt), so a byte-layout mistake common to both would pass
// here: the test vectors' independent cross-check
// (appliance/tcpcrypt/testdata/crosscheck.py) is what checks the bytes.
//
// `go test ./...` as root runs a subset in which every TEP, AEAD and frame
// size meets both appliance roles (13 cases, about a minute);
// INTEROP_FULL=1 runs the whole matrix (101 cases), which scripts/test.sh
// does once and scripts/interop.sh three times in a row. Each case is a subtest:
// -run 'TestInterop/applianceB/p256.*frame16384' picks cases. A failed case
// reports the appliance's counters, the host-mode JSON lines and the case's
// packets on the untrusted link; INTEROP_KEEP=DIR keeps its capture.
package interop
