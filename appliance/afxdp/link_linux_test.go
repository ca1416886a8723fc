package afxdp

import (
	"errors"
	"net"
	"testing"
)

// TestReadLink: ReadLink gives what the kernel says of an interface (the
// loopback here, as net.InterfaceByName sees it) and ErrNoInterface for a
// name no interface has.
func TestReadLink(t *testing.T) {
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ReadLink("lo")
	if err != nil || l.Index != ifi.Index || l.MTU != ifi.MTU {
		t.Fatalf("ReadLink(lo) = %+v, %v; want index %d, MTU %d", l, err, ifi.Index, ifi.MTU)
	}
	if _, err := ReadLink("tdi-nonexist0"); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("ReadLink of a missing interface: %v, want ErrNoInterface", err)
	}
}
