package engine

import (
	"testing"
)

// RFC 8547 §4.6: "A host MUST disable encryption, refrain from sending any
// further ENO options, and fall back to unencrypted TCP if ... Any segment
// it receives up to and including the first received ACK segment does not
// contain an ENO option (or contains an ill-formed SYN-form ENO option)."
// For host B that covers a repeated SYN: an active opener "MAY unilaterally
// disable ENO (and thus remove the ENO option) between retransmissions of
// a SYN-only segment". The repeat without a usable option (none, an
// ill-formed one, two of them, §4.1, §4.4) ends the negotiation, before the
// inside host answered and after: its SYN-ACK (first or repeated) leaves
// without ENO, and the flow is plain.
func TestRepeatedSYNWithoutENO(t *testing.T) {
	variants := []struct {
		name string
		opt  []byte
	}{
		{"no option", nil},
		{"length byte last (§4.4 case 1)", []byte{69, 4, 0x23, 0x81}},
		{"length byte before 0x23 (§4.4 case 2)", []byte{69, 5, 0x80, 0x23, 0x00}},
		{"two options (§4.1)", []byte{69, 3, 0x23, 69, 3, 0x23}},
	}
	for _, answered := range []bool{false, true} {
		for _, vr := range variants {
			gb := newGW(t, Config{TEPs: testTEPs})
			gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
			synack := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil)
			if answered {
				_, out := gb.push(Inside, synack)
				if option(one(t, "SYN-ACK", out).opts, 69) == nil {
					t.Fatalf("%s: first SYN-ACK without ENO", vr.name)
				}
			}
			toIn, toOut := gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), vr.opt...), nil))
			none(t, "repeated SYN outside", toOut)
			if s := one(t, "repeated SYN to b", toIn); s.flags != synF || s.seq != isnA {
				t.Fatalf("%s, answered %v: repeated SYN to b: %+v", vr.name, answered, s)
			}
			_, toOut = gb.push(Inside, synack)
			if s := one(t, "SYN-ACK after the repeat", toOut); option(s.opts, 69) != nil {
				t.Fatalf("%s, answered %v: SYN-ACK carries ENO after the SYN without it: %x", vr.name, answered, s.opts)
			}
			if fi := flowInfo(t, gb.e); fi.State != "plain" || fi.Encrypted {
				t.Fatalf("%s, answered %v: flow %+v, want plain", vr.name, answered, fi)
			}
		}
	}
}

// Under the require policy a repeated SYN without ENO is held back (it
// cannot lead to encryption); the negotiation goes on from the first SYN.
func TestRepeatedSYNWithoutENORequire(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs, Policies: []PolicyRule{{Prefix: mustPrefix("192.0.2.0/24"), Policy: Require}}})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
	toIn, toOut := gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	none(t, "repeated SYN to b", toIn)
	none(t, "repeated SYN outside", toOut)
	_, toOut = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	hasBytes(t, "SYN-ACK option", option(one(t, "SYN-ACK", toOut).opts, 69), unhex("45040123"))
}
