package hostmode

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// tcpPair returns both ends of a loopback TCP connection. With mangle set,
// the bytes from a to b pass through a relay that hands each chunk to it.
func tcpPair(t *testing.T, mangle func([]byte)) (a, b *net.TCPConn) {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skip("no loopback:", err)
	}
	defer l.Close()
	ch := make(chan *net.TCPConn, 1)
	go func() {
		c, _ := l.AcceptTCP()
		ch <- c
	}()
	a, err = net.DialTCP("tcp4", nil, l.Addr().(*net.TCPAddr))
	if err != nil {
		t.Skip("loopback unusable here (the tests run in a namespace as root):", err)
	}
	src := <-ch
	t.Cleanup(func() { a.Close(); src.Close() })
	if mangle == nil {
		return a, src
	}
	// a -> relay -> b2: the relay sits between a's peer socket (b) and b2.
	l2, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	go func() {
		c, _ := l2.AcceptTCP()
		ch <- c
	}()
	out, err := net.DialTCP("tcp4", nil, l2.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	b2 := <-ch
	t.Cleanup(func() { out.Close(); b2.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				mangle(buf[:n])
				out.Write(buf[:n])
			}
			if err != nil {
				out.CloseWrite()
				return
			}
		}
	}()
	return a, b2
}

// connPair makes two Conns over a TCP pair with the keys of one session.
func connPair(t *testing.T, mangle func([]byte), knobs Knobs) (a, b *Conn) {
	t.Helper()
	ta, tb := tcpPair(t, mangle)
	mk := make([]byte, 32)
	rand.Read(mk)
	info := Info{Encrypted: true, Suite: cryptopool.AES128GCM, Role: eno.RoleA, SendsAB: true}
	a, err := newConn(ta, info, knobs, mk, 75, 74, nil)
	if err != nil {
		t.Fatal(err)
	}
	info.Role, info.SendsAB = eno.RoleB, false
	b, err = newConn(tb, info, knobs, mk, 74, 75, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	a.SetDeadline(time.Now().Add(10 * time.Second))
	b.SetDeadline(time.Now().Add(10 * time.Second))
	return a, b
}

// A flipped bit anywhere in a frame fails authentication: Read reports
// ErrFrameAuth, never EOF and never the forged bytes (RFC 8548 §3.6).
func TestTamperedFrame(t *testing.T) {
	for _, at := range []int{0, 1, 3, 20, 500} {
		seen := 0
		a, b := connPair(t, func(p []byte) {
			for i := range p {
				if seen+i == at {
					p[i] ^= 0x04
				}
			}
			seen += len(p)
		}, Knobs{FrameSize: 1000})
		msg := bytes.Repeat([]byte{'m'}, 3000)
		go func() { a.Write(msg); a.CloseWrite() }()
		got, err := io.ReadAll(b)
		if !errors.Is(err, ErrFrameAuth) && at != 0 {
			t.Errorf("byte %d flipped: err %v, want ErrFrameAuth", at, err)
		}
		if at == 0 && err == nil {
			t.Errorf("rekey bit flipped: no error") // the control byte is in the AD
		}
		if len(got) > 1000*(at/1020) {
			t.Errorf("byte %d flipped: %d bytes delivered, more than the frames before it", at, len(got))
		}
	}
}

// Rekeying on every frame in both directions at once, and after one side's
// FINp: the other side keeps sending, the closed side answers nothing and
// keeps reading (RFC 8548 §3.8).
func TestRekeyBothWaysAndAfterFIN(t *testing.T) {
	a, b := connPair(t, nil, Knobs{FrameSize: 300, RekeyFrames: 1})
	data := make([]byte, 200000)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		got, err := io.ReadAll(b)
		if err == nil && !bytes.Equal(got, data) {
			err = errors.New("a->b data differs")
		}
		if err == nil {
			_, err = b.Write(data) // after a's FINp
		}
		if err == nil {
			err = b.CloseWrite()
		}
		errc <- err
	}()
	if _, err := a.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	sendGen := a.sendGen
	got, err := io.ReadAll(a)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("b->a: %d bytes, %v", len(got), err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if a.sendGen != sendGen || a.remoteGen < 600 {
		t.Fatalf("after FINp: sent generations %d -> %d, remote generation %d", sendGen, a.sendGen, a.remoteGen)
	}
}

// Bytes after the FINp frame are an error (RFC 8548 §3.7).
func TestDataAfterFINp(t *testing.T) {
	a, b := connPair(t, nil, Knobs{})
	a.Write([]byte("last"))
	// The FINp frame and a stray byte after it, in one segment.
	h := tcpcrypt.FrameHeader{FIN: true}
	f, err := a.sealer.Seal(make([]byte, h.Overhead()), h, 0, a.sendOff)
	if err != nil {
		t.Fatal(err)
	}
	a.tcp.Write(append(f, 0))
	a.tcp.CloseWrite()
	got, err := io.ReadAll(b)
	if string(got) != "last" || !errors.Is(err, ErrDataAfterFINp) {
		t.Fatalf("got %q, %v", got, err)
	}
}

// The sock_ops program passes the verifier (no namespace needed).
func TestProgramLoads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (BPF)")
	}
	var m [4]*ebpf.Map
	for i := range m {
		var err error
		m[i], err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: []uint32{8, 4, 9, tupleSize}[i],
			ValueSize: []uint32{dvSize, lvSize, rvSize, pvSize}[i], MaxEntries: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer m[i].Close()
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SockOps, License: "BSD",
		Instructions: sockOpsProgram(progMaps{m[0], m[1], m[2], m[3]})})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}
