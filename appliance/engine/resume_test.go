package engine

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

func newGWCache(t *testing.T, cfg Config) *gw {
	cfg.AEADs = []cryptopool.Suite{cryptopool.AES128GCM}
	e, err := New(cfg, Deps{Cache: tcpcrypt.NewCache[netip.Addr](tcpcrypt.CacheConfig{})})
	if err != nil {
		t.Fatal(err)
	}
	g := &gw{t: t, e: e}
	g.in, g.out, g.tx = sinks()
	return g
}

// connect runs a handshake from port aPort and returns the first frame a
// sends as it appears on the wire, plus the two flows.
func connect(t *testing.T, ga, gb *gw, aPort uint16) (syn segv, wire segv) {
	return connectAddrs(t, ga, gb, netip.AddrPortFrom(addrA.Addr(), aPort), addrB)
}

func connectAddrs(t *testing.T, ga, gb *gw, a, addrB netip.AddrPort) (syn segv, wire segv) {
	return connectSYNOpts(t, ga, gb, a, addrB, synOpts(1460, 1))
}

// connectSYNOpts is connectAddrs with a's SYN carrying the options opts.
func connectSYNOpts(t *testing.T, ga, gb *gw, a, addrB netip.AddrPort, opts []byte) (syn segv, wire segv) {
	_, o := ga.push(Inside, tcpFrame(a, addrB, isnA, 0, synF, 64240, opts, nil))
	syn = one(t, "SYN", o)
	gb.push(Outside, o[0])
	_, o = gb.push(Inside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	ga.push(Outside, one(t, "SYN-ACK", o).frame())
	_, o = ga.push(Inside, tcpFrame(a, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
	finishKex(ga, gb, o)
	_, o = ga.push(Inside, tcpFrame(a, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), []byte("data")))
	return syn, one(t, "data on the wire", o)
}

// finishKex carries what ga sent after a's third segment (the third
// segment and Init1) to gb, and the answers back and forth, until the key
// exchange is done.
func finishKex(ga, gb *gw, third [][]byte) {
	for _, f := range third {
		_, back := gb.push(Outside, f)
		for _, b := range back {
			_, more := ga.push(Outside, b)
			for _, m := range more {
				gb.push(Outside, m)
			}
		}
	}
}

func (s segv) frame() []byte { return tcpFrameFrom(s) }

// A second connection to the same far side resumes (RFC 8548 §3.5): the SYN
// offers the cached secret (v bit, identifier half, nonce), G_B accepts it,
// no Init messages are sent and the first frame is at wire offset 0. With
// NoResumption nothing is offered.
func TestResumption(t *testing.T) {
	ga, gb := newGWCache(t, Config{TEPs: testTEPs}), newGWCache(t, Config{TEPs: testTEPs})
	syn1, w1 := connect(t, ga, gb, 40001)
	hasBytes(t, "first SYN offers fresh", option(syn1.opts, 69), unhex("45042423"))
	if w1.seq != isnA+1+75 {
		t.Fatalf("fresh data at %x", w1.seq)
	}
	syn2, w2 := connect(t, ga, gb, 40002)
	o := option(syn2.opts, 69)
	// 45 len, then 0x24 (X448 fresh), then the length byte and 0xa3 + 9 + 8 bytes.
	if len(o) < 4 || o[len(o)-18] != 0xa3 {
		t.Fatalf("second SYN option %x has no resumption suboption", o)
	}
	if w2.seq != isnA+1 {
		t.Fatalf("resumed data at %x, want wire offset 0", w2.seq)
	}
	var ids [][33]byte
	for _, g := range []*gw{ga, gb} {
		g.e.Flows(func(fi FlowInfo) {
			if fi.Inside.Port() == 40002 || fi.Outside.Port() == 40002 {
				if !fi.Resumed || !fi.Encrypted {
					t.Fatalf("flow not resumed: %+v", fi)
				}
				ids = append(ids, fi.SessionID)
			}
		})
	}
	if len(ids) != 2 || ids[0] != ids[1] || ids[0][0] != 0xa3 {
		t.Fatalf("resumed session IDs %x", ids)
	}
	if ga.e.Counters().Resumed.Load() != 1 || gb.e.Counters().Resumed.Load() != 1 {
		t.Fatal("resumptions not counted")
	}
	// The resumed stream decrypts at G_B.
	in, _ := gb.push(Outside, w2.frame())
	if len(in) != 1 || string(parse(t, in[0]).payload) != "data" {
		t.Fatal("resumed data not delivered")
	}

	// NoResumption neither offers nor caches (TC-40).
	gc, gd := newGWCache(t, Config{TEPs: testTEPs, NoResumption: true}), newGWCache(t, Config{TEPs: testTEPs})
	connect(t, gc, gd, 40003)
	syn4, _ := connect(t, gc, gd, 40004)
	hasBytes(t, "no offer with NoResumption", option(syn4.opts, 69), unhex("45042423"))
}

// G_B agrees to resume whenever A's resumption suboption names a secret it
// holds for a TEP it still offers, even if it prefers another TEP A also
// offered fresh (RFC 8548 §3.5: it SHOULD agree to resume; declining is
// for when it does not hold the secret). The first session used X448, the
// only TEP the two had in common then; the second SYN offers X448
// resumption and X25519 fresh, and G_B prefers X25519.
func TestResumptionBeatsPreference(t *testing.T) {
	ga := newGWCache(t, Config{TEPs: []tcpcrypt.TEP{tcpcrypt.TEPX448}})
	gb := newGWCache(t, Config{TEPs: testTEPs})
	connect(t, ga, gb, 40011)
	c := ga.e.Config()
	c.TEPs = testTEPs
	if err := ga.e.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	syn, w := connect(t, ga, gb, 40012)
	if o := option(syn.opts, 69); len(o) < 18 || o[len(o)-18] != 0xa4 {
		t.Fatalf("second SYN option %x offers no X448 resumption", o)
	}
	if w.seq != isnA+1 {
		t.Fatalf("data at wire offset %d, want 0 (resumed)", w.seq-isnA-1)
	}
	for _, g := range []*gw{ga, gb} {
		g.e.Flows(func(fi FlowInfo) {
			if fi.Inside.Port() == 40012 || fi.Outside.Port() == 40012 {
				if !fi.Resumed || fi.SessionID[0] != 0xa4 {
					t.Fatalf("second connection not resumed with X448: %+v", fi)
				}
			}
		})
	}
}

// A resumed session keeps the AEAD of the original one (RFC 8548 §3.5), so
// one the operator removed (PUT /api/v1/config aeads) may not be resumed.
// Before, G_A offered the cached AES-128-GCM secret whatever its AEADs and
// G_B accepted it, so every reconnection within the cache's TTL went on
// with AES-128-GCM while the configuration listed only ChaCha20-Poly1305.
// Now G_A does not offer it, and G_B declines it when it is offered (the
// suboption is then a fresh offer of its TEP, TC-20): the connection gets a
// fresh key exchange under the AEADs in force, never a failure.
func TestResumptionDropsRemovedAEAD(t *testing.T) {
	chacha := []cryptopool.Suite{cryptopool.ChaCha20Poly1305}
	setAEADs := func(g *gw, s []cryptopool.Suite) {
		c := g.e.Config()
		c.AEADs = s
		if err := g.e.Reconfigure(c); err != nil {
			t.Fatal(err)
		}
	}
	flowAt := func(g *gw, port uint16) (fi FlowInfo) {
		g.e.Flows(func(f FlowInfo) {
			if f.Inside.Port() == port || f.Outside.Port() == port {
				fi = f
			}
		})
		return fi
	}
	fresh := func(name string, ga, gb *gw, port uint16, init1 uint32) (syn segv) {
		t.Helper()
		syn, w := connect(t, ga, gb, port)
		if w.seq != isnA+1+init1 {
			t.Fatalf("%s: data at wire offset %d, want %d (a fresh Init1); SYN option %x", name, w.seq-isnA-1, init1, option(syn.opts, 69))
		}
		for _, g := range []*gw{ga, gb} {
			if fi := flowAt(g, port); !fi.Encrypted || fi.Resumed || fi.AEAD != cryptopool.ChaCha20Poly1305.String() {
				t.Fatalf("%s: flow %+v, want a fresh session with %v", name, fi, cryptopool.ChaCha20Poly1305)
			}
		}
		return syn
	}

	// Both appliances drop AES-128-GCM: G_A offers a fresh exchange only.
	ga, gb := newGWCache(t, Config{TEPs: testTEPs}), newGWCache(t, Config{TEPs: testTEPs})
	connect(t, ga, gb, 40031)
	setAEADs(ga, chacha)
	setAEADs(gb, chacha)
	syn := fresh("both changed", ga, gb, 40032, 75)
	hasBytes(t, "SYN after the AEAD change", option(syn.opts, 69), unhex("45042423"))

	// Only G_B drops it: G_A (which still allows it) offers the secret,
	// G_B declines, and the two agree on ChaCha20-Poly1305 afresh (Init1
	// lists two AEADs: 77 bytes). The next connection resumes that session.
	ga, gb = newGWCache(t, Config{TEPs: testTEPs}), newGWCache(t, Config{TEPs: testTEPs})
	connect(t, ga, gb, 40033)
	setAEADs(ga, []cryptopool.Suite{cryptopool.AES128GCM, cryptopool.ChaCha20Poly1305})
	setAEADs(gb, chacha)
	fresh("G_B declines", ga, gb, 40034, 77)
	if _, w := connect(t, ga, gb, 40035); w.seq != isnA+1 {
		t.Fatalf("the ChaCha20-Poly1305 session was not resumed (data at wire offset %d)", w.seq-isnA-1)
	}
	if fi := flowAt(gb, 40035); !fi.Resumed || fi.AEAD != cryptopool.ChaCha20Poly1305.String() {
		t.Fatalf("third connection: %+v", fi)
	}
}

// A resumed A may send frames at once (RFC 8548 §3.2, §3.5), in the
// segment that completes the handshake: G_B must resume on it and deliver
// its frame.
func TestResumedDataInThirdSegment(t *testing.T) {
	ga, gb := newGWCache(t, Config{TEPs: testTEPs}), newGWCache(t, Config{TEPs: testTEPs})
	connect(t, ga, gb, 40021)
	a := netip.AddrPortFrom(addrA.Addr(), 40022)
	_, o := ga.push(Inside, tcpFrame(a, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	syn := one(t, "SYN", o)
	gb.push(Outside, o[0])
	_, o = gb.push(Inside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	ga.push(Outside, one(t, "SYN-ACK", o).frame())
	_, o = ga.push(Inside, tcpFrame(a, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
	third := one(t, "third segment", o)
	_, o = ga.push(Inside, tcpFrame(a, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), []byte("data")))
	data := one(t, "resumed data", o)
	if data.seq != isnA+1 {
		t.Fatalf("not resumed (data at %x), SYN %x", data.seq, option(syn.opts, 69))
	}
	// One segment: the third segment's options (45 02), the data's payload.
	merged := tcpFrame(a, addrB, isnA+1, isnB+1, ackF|pshF, data.win, third.opts, data.payload)
	in, _ := gb.push(Outside, merged)
	got := false
	for _, s := range in {
		if string(parse(t, s).payload) == "data" {
			got = true
		}
	}
	if !got {
		t.Fatalf("G_B did not deliver the frame carried by the third segment: %d segments to b", len(in))
	}
}

// A SYN whose options leave no room for the resumption suboption (a Fast
// Open cookie request beside MSS, SACK, timestamps and window scale leaves
// 16 bytes) offers a fresh key exchange instead of falling back to plain
// TCP; the secret stays spent. Before, such a connection stayed plain
// (option_room), and a Fast Open server then gave the client the cookie
// that kept its later connections plain too.
func TestResumptionNoRoom(t *testing.T) {
	ga, gb := newGWCache(t, Config{TEPs: testTEPs}), newGWCache(t, Config{TEPs: testTEPs})
	connect(t, ga, gb, 40001)
	opts := append(synOpts(1460, 1), 34, 2) // Fast Open cookie request (RFC 7413 §4.1.1)
	syn, w := connectSYNOpts(t, ga, gb, netip.AddrPortFrom(addrA.Addr(), 40002), addrB, opts)
	hasBytes(t, "a fresh offer", option(syn.opts, 69), unhex("45042423"))
	if option(syn.opts, 34) == nil {
		t.Fatal("the cookie request was removed")
	}
	if n := ga.e.Counters().ResumeNoRoom.Load(); n != 1 {
		t.Fatalf("resume_no_room %d, want 1", n)
	}
	if n := ga.e.Counters().Fallbacks[FallbackOptionRoom].Load(); n != 0 {
		t.Fatalf("%d option_room fallbacks", n)
	}
	// The connection goes on encrypted, with a fresh exchange.
	if w.seq != isnA+1+75 {
		t.Fatalf("data at %x, want after a fresh Init1 (%x)", w.seq, isnA+1+75)
	}
	// The next SYN with room resumes from the secret after the spent one.
	syn3, w3 := connect(t, ga, gb, 40003)
	if o := option(syn3.opts, 69); len(o) < 18 || o[len(o)-18] != 0xa3 {
		t.Fatalf("third SYN option %x offers no resumption", o)
	}
	if w3.seq != isnA+1 {
		t.Fatalf("third connection's data at %x, want resumed at wire offset 0", w3.seq)
	}
}

// The resumption cache erased a secret past its TTL only when it was next
// used: a quiet appliance kept it in memory long after (a soak review).
// The engines' ticks have it expire its chains, about once a second.
func TestTicksExpireResumptionCache(t *testing.T) {
	var reads atomic.Int64
	cache := tcpcrypt.NewCache[netip.Addr](tcpcrypt.CacheConfig{Now: func() time.Time { reads.Add(1); return time.Now() }})
	g := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Cache: cache})
	for range 300 {
		g.tick(int64(10 * time.Millisecond)) // 3 s
	}
	if n := reads.Load(); n < 2 || n > 4 {
		t.Fatalf("the cache looked at its clock %d times in 3 s of ticks, want about 3 (one expiry a second)", n)
	}
}

// RFC 8548 §3.5: a passive opener that receives a TEP suboption with v = 1
// but fewer than 9 data bytes MUST treat it as an offer of a fresh key
// exchange with that TEP (TC-22). The far side's SYN offers X25519 that
// way, with 2 and with 8 data bytes (one short of an identifier half): G_B,
// which has a session cache, answers as to a fresh offer, v = 0 (`45 04 01
// 23`), never echoing the v bit.
func TestShortResumptionOfferIsFresh(t *testing.T) {
	for _, opt := range [][]byte{
		unhex("4505a30102"),
		unhex("450ba30102030405060708"),
	} {
		gb := newGWCache(t, Config{TEPs: testTEPs})
		toIn, toOut := gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), opt...), nil))
		none(t, "SYN outside", toOut)
		one(t, "SYN to b", toIn)
		_, toOut = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
		hasBytes(t, fmt.Sprintf("SYN-ACK option answering % x (TC-22)", opt), option(one(t, "SYN-ACK", toOut).opts, 69), unhex("45040123"))
	}
}
