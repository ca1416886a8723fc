// Package integration holds the end-to-end tests of tcpincd: the daemon built
// from cmd/tcpincd runs in both appliance namespaces of the standard test
// topology (deploy/topology, bare mode, namespace prefix "tdi-"), and real
// applications talk through the pair. The tests need root and skip without it.
package integration
