package engine

import (
	"bytes"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
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

// RFC 8547 §4.7: "a host that implements ENO MUST discard the data in a
// received SYN+ENO segment if any of the following applies: ENO fails ...
// The received segment's SYN TEP is not the negotiated TEP. The negotiated
// TEP does not define the use of SYN data. The SYN segment contains a
// non-empty TFO option", and "MUST NOT acknowledge the sequence number of
// the discarded data". The inside host stands behind the appliance and
// knows nothing of ENO, so the data of the far side's SYN+ENO must not
// reach it: tcpcrypt defines no SYN data (RFC 8548), so it is discarded
// whatever the outcome. The negotiation itself goes on: SYN data does not
// make ENO fail (here the SYN TEP is 0x20, which may define SYN data, and
// tcpcrypt is negotiated). A Fast Open cookie leaves the connection plain
// (the appliance does not combine ENO with Fast Open), still without the
// data.
func TestFarSYNDataDiscarded(t *testing.T) {
	data := []byte("SYN DATA")
	eno := []byte{69, 4, 0x23, 0x20}
	cookie := []byte{34, 10, 1, 2, 3, 4, 5, 6, 7, 8}
	for _, c := range []struct {
		name  string
		opts  []byte
		state string
	}{
		{"ENO", append(synOpts(1460, 1), eno...), "syn-received"},
		{"ENO and a Fast Open cookie", append(append(synOpts(1460, 1), eno...), append(cookie, 1, 1)...), "plain"},
	} {
		gb := newGW(t, Config{TEPs: testTEPs})
		for i := 0; i < 2; i++ { // the SYN and its repeat
			toIn, toOut := gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, c.opts, data))
			none(t, "SYN outside", toOut)
			s := one(t, "SYN to b", toIn)
			if len(s.payload) != 0 || s.seq != isnA || s.flags != synF {
				t.Fatalf("%s, SYN %d to b: %q at %x flags %x, want no data", c.name, i, s.payload, s.seq, s.flags)
			}
			if fi := flowInfo(t, gb.e); fi.State != c.state {
				t.Fatalf("%s, SYN %d: flow %+v, want %s", c.name, i, fi, c.state)
			}
		}
		if c.state == "plain" {
			continue
		}
		_, toOut := gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
		hasBytes(t, c.name+": SYN-ACK option", option(one(t, "SYN-ACK", toOut).opts, 69), unhex("45040123"))
	}
}

// RFC 8547 §4.7 on host A's side: the data of a SYN-ACK that carries ENO is
// discarded when ENO fails (TestSYNACKDataNeverDelivered covers success).
// Here B's option has b = 0 (a role clash, §4.3): plain TCP, and the
// SYN-ACK reaches the inside host without its data, so the host does not
// acknowledge it.
func TestSYNACKDataDiscardedOnFallback(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 1, append(synOpts(1460, 2), 69, 3, 0x23), []byte("SYN-ACK DATA"))
	toIn, toOut := ga.push(Outside, sa)
	none(t, "SYN-ACK outside", toOut)
	s := one(t, "SYN-ACK to a", toIn)
	if len(s.payload) != 0 || s.seq != isnB || s.ack != isnA+1 || s.flags != synF|ackF {
		t.Fatalf("SYN-ACK to a: %q seq %x ack %x flags %x, want it without data", s.payload, s.seq, s.ack, s.flags)
	}
	if fi := flowInfo(t, ga.e); fi.State != "plain" || fi.Encrypted {
		t.Fatalf("flow %+v, want plain", fi)
	}
}

// RFC 8547 §4.7: "a SYN+ENO segment MUST NOT include a non-empty TCP Fast
// Open (TFO) option". The far side may ask for a cookie (an empty TFO
// option is allowed beside ENO) and an inside host that serves Fast Open
// answers with one in its SYN-ACK. The SYN-ACK the appliance adds its ENO
// option to leaves without the cookie (kind 34, or the experimental 254
// with ExID 0xF989, RFC 7413 §4.1.1); the client just gets no cookie.
func TestHostSYNACKFastOpenCookieNotWithENO(t *testing.T) {
	for _, c := range []struct{ request, cookie []byte }{
		{[]byte{34, 2, 1, 1}, []byte{34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1}},
		{[]byte{254, 4, 0xf9, 0x89}, []byte{254, 12, 0xf9, 0x89, 1, 2, 3, 4, 5, 6, 7, 8}},
	} {
		gb := newGW(t, Config{TEPs: testTEPs})
		syn := append(append(synOpts(1460, 1), 69, 3, 0x23), c.request...)
		gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, syn, nil))
		sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(packettest.MSSOption(1460), c.cookie...), nil)
		_, toOut := gb.push(Inside, sa)
		s := one(t, "SYN-ACK", toOut)
		hasBytes(t, "SYN-ACK ENO option", option(s.opts, 69), unhex("45040123"))
		if o := option(s.opts, c.cookie[0]); o != nil {
			t.Fatalf("SYN-ACK with ENO carries the Fast Open cookie %x", o)
		}
		if mss(s.opts) != 1460 {
			t.Fatalf("SYN-ACK lost its MSS: %x", s.opts)
		}
	}
}

// RFC 8547 §4.6: "A host employing TCP-ENO for a connection MUST include an
// ENO option in every TCP segment sent until either encryption is disabled
// or the host receives a non-SYN segment." Host A's keep-alive probe before
// anything but the SYN-ACK came from B (B's Init2 is late) is such a
// segment: it carries `45 02` like the third segment and Init1.
func TestKeepAliveCarriesENOUntilNonSYN(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	toThirdSegment(ga, gb)
	_, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA, isnB+1, ackF, 502, tsOpt(3, 2), nil))
	s := one(t, "keep-alive", toOut)
	if s.seq != isnA+75 || len(s.payload) != 0 || s.flags != ackF { // below Init1's end
		t.Fatalf("keep-alive on the wire: %+v", s)
	}
	hasBytes(t, "keep-alive ENO", option(s.opts, 69), unhex("4502"))
}

// A repeated SYN without ENO (TestRepeatedSYNWithoutENO) on a tuple whose
// closed encrypted connection the first SYN displaced: the fallback must
// not end the old record before the inside host accepted the new
// connection (TestReusedTupleOldSegmentsStayEncrypted), or the old
// connection's retransmitted data would leave in plaintext.
func TestRepeatedSYNWithoutENOKeepsDisplacedRecord(t *testing.T) {
	pr, h, secret := closedPair(t)
	// A new SYN with ENO on the tuple, then its repeat without.
	syn := tcpFrame(addrA, addrB, h.aNext+1000, 0, synF, 64240, append(synOpts(1460, pr.tsA+1), farENOOpt...), nil)
	one(t, "new SYN at b", first(pr.gb.push(Outside, syn)))
	one(t, "repeated SYN at b", first(pr.gb.push(Outside, tcpFrame(addrA, addrB, h.aNext+1000, 0, synF, 64240, synOpts(1460, pr.tsA+2), nil))))
	// b resends its data and FIN: still the old connection's, encrypted.
	_, out := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext-uint32(len(secret))-1, h.aNext, ackF|pshF|finF, 509, tsOpt(pr.tsB, pr.tsA), secret))
	for _, o := range out {
		if bytes.Contains(o, secret) {
			t.Fatal("the old connection's data left in plaintext")
		}
	}
	// b accepts the new connection: its SYN-ACK leaves without ENO.
	_, out = pr.gb.push(Inside, tcpFrame(addrB, addrA, 777, h.aNext+1001, synF|ackF, 65160, synOpts(1460, pr.tsB+1), nil))
	if s := one(t, "SYN-ACK of the new connection", out); option(s.opts, 69) != nil {
		t.Fatalf("SYN-ACK carries ENO after the repeated SYN without it: %+v", s)
	}
}

func first(a, b [][]byte) [][]byte { return a }

// RFC 8547 §4.6: every segment until a non-SYN segment arrives carries ENO,
// an RST included: the inside host's RST before B's Init2 came.
func TestRSTCarriesENOUntilNonSYN(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	toThirdSegment(ga, gb)
	_, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, rstF|ackF, 0, nil, nil))
	s := one(t, "RST", toOut)
	if s.flags&rstF == 0 {
		t.Fatalf("RST on the wire: %+v", s)
	}
	hasBytes(t, "RST ENO", option(s.opts, 69), unhex("4502"))
}
