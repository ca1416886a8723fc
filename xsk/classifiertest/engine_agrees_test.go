package classifiertest

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// TestEngineDecoderAgrees: a frame the classifier forwards as non-TCP on
// the fast path is not TCP (nor a fragment of it) to the engine's decoder
// either. Were it, the engine could negotiate and encrypt a connection
// whose frames the kernel then carries unencrypted past it (a tag the
// program does not read through, such as 0x9100, once the fast path is on).
func TestEngineDecoderAgrees(t *testing.T) {
	for _, c := range Cases() {
		if c.Reason != NonTCP {
			continue
		}
		var p packet.Packet
		if p.Decode(c.Frame) == nil && (p.IsTCP() || p.IsFragment() && p.Proto() == packet.ProtoTCP) {
			t.Errorf("%s: the classifier forwards it as non-TCP, the engine decodes TCP", c)
		}
	}
}
