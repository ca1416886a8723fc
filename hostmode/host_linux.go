package hostmode

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// Host runs TCP-ENO and tcpcrypt for the sockets this process opens with
// Dial and Listen. New moves the process into a cgroup of its own (cgroup
// v2) and attaches the sock_ops program there, so no other process is
// touched; sockets the process opens otherwise are left alone, because the
// program acts only on sockets registered in its maps.
type Host struct {
	cfg   Config
	cache *cache

	maps    progMaps
	prog    *ebpf.Program
	link    link.Link
	cgroup  string // our cgroup directory
	parent  string // the cgroup the process came from
	mounted string // a cgroup2 mount we made, if any

	mu     sync.Mutex
	closed bool
}

// New loads the program and enters its cgroup. cfg is the default for Dial
// and Listen.
func New(cfg Config) (*Host, error) {
	h := &Host{cfg: cfg}
	if err := h.load(); err != nil {
		h.Close()
		return nil, err
	}
	h.cache = newCache(tcpcrypt.DefaultResumeNonceLen, h)
	return h, nil
}

// Config returns the default configuration.
func (h *Host) Config() Config { return h.cfg }

// FlushCache drops every cached session secret.
func (h *Host) FlushCache() { h.cache.flushAll() }

func (h *Host) load() error {
	var err error
	if h.maps.dial, err = ebpf.NewMap(&ebpf.MapSpec{Name: "hm_dial", Type: ebpf.LRUHash, KeySize: 8, ValueSize: dvSize, MaxEntries: 4096}); err != nil {
		return fmt.Errorf("hostmode: dial map: %w", err)
	}
	if h.maps.listen, err = ebpf.NewMap(&ebpf.MapSpec{Name: "hm_listen", Type: ebpf.Hash, KeySize: 4, ValueSize: lvSize, MaxEntries: 256}); err != nil {
		return fmt.Errorf("hostmode: listen map: %w", err)
	}
	if h.maps.resume, err = ebpf.NewMap(&ebpf.MapSpec{Name: "hm_resume", Type: ebpf.Hash, KeySize: tcpcrypt.ResumeHalf, ValueSize: rvSize, MaxEntries: 4096}); err != nil {
		return fmt.Errorf("hostmode: resume map: %w", err)
	}
	if h.maps.pass, err = ebpf.NewMap(&ebpf.MapSpec{Name: "hm_pass", Type: ebpf.LRUHash, KeySize: tupleSize, ValueSize: pvSize, MaxEntries: 8192}); err != nil {
		return fmt.Errorf("hostmode: pass map: %w", err)
	}
	h.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "hm_sockops", Type: ebpf.SockOps, License: "BSD",
		Instructions: sockOpsProgram(h.maps),
	})
	if err != nil {
		return fmt.Errorf("hostmode: sock_ops program: %w", err)
	}
	root, err := h.cgroupRoot()
	if err != nil {
		return err
	}
	self, err := selfCgroup()
	if err != nil {
		return err
	}
	h.parent = filepath.Join(root, self)
	removeStaleCgroups(h.parent)
	h.cgroup = filepath.Join(h.parent, fmt.Sprintf("tcpinc-host-%d-%p", os.Getpid(), h))
	if err := os.Mkdir(h.cgroup, 0o755); err != nil {
		return fmt.Errorf("hostmode: cgroup: %w", err)
	}
	if h.link, err = link.AttachCgroup(link.CgroupOptions{Path: h.cgroup, Attach: ebpf.AttachCGroupSockOps, Program: h.prog}); err != nil {
		return fmt.Errorf("hostmode: attach: %w", err)
	}
	// Sockets belong to the cgroup of the process that creates them.
	if err := os.WriteFile(filepath.Join(h.cgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("hostmode: enter cgroup: %w", err)
	}
	return nil
}

// cgroupRoot finds the cgroup2 mount, or mounts one (`ip netns exec` gives a
// fresh /sys without it).
func (h *Host) cgroupRoot() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		l := s.Text()
		i := strings.Index(l, " - ")
		if i < 0 {
			continue
		}
		if strings.HasPrefix(l[i+3:], "cgroup2 ") {
			fields := strings.Fields(l[:i])
			if len(fields) >= 5 {
				return fields[4], nil
			}
		}
	}
	dir, err := os.MkdirTemp("", "tcpinc-cgroup2-")
	if err != nil {
		return "", err
	}
	if err := unix.Mount("none", dir, "cgroup2", 0, ""); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("hostmode: mount cgroup2: %w", err)
	}
	h.mounted = dir
	return dir, nil
}

// removeStaleCgroups removes the cgroups of processes that died without
// Close (killed): they are empty, and rmdir fails on any that is not.
func removeStaleCgroups(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "tcpinc-host-*"))
	for _, d := range dirs {
		f := strings.Split(filepath.Base(d), "-")
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			_ = os.Remove(d)
		}
	}
}

func selfCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("hostmode: no cgroup v2 membership in /proc/self/cgroup")
}

// Close leaves the cgroup, detaches the program and removes the cgroup.
// Connections already open keep working unencrypted-or-encrypted as they
// were; the program is only needed during handshakes.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	if h.parent != "" {
		_ = os.WriteFile(filepath.Join(h.parent, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
	}
	if h.link != nil {
		h.link.Close()
	}
	if h.cgroup != "" {
		_ = os.Remove(h.cgroup)
	}
	if h.mounted != "" {
		_ = unix.Unmount(h.mounted, 0)
		_ = os.Remove(h.mounted)
	}
	for _, m := range []*ebpf.Map{h.maps.dial, h.maps.listen, h.maps.resume, h.maps.pass} {
		if m != nil {
			m.Close()
		}
	}
	if h.prog != nil {
		h.prog.Close()
	}
	return nil
}

func (h *Host) putResume(t *ticket) error {
	v := make([]byte, rvSize)
	v[rvTEP] = byte(t.tep) | tcpcrypt.ResumeBit
	copy(v[rvHalf:], t.own[:])
	v[rvNonceLen] = byte(len(t.nonce))
	copy(v[rvNonce:], t.nonce)
	return h.maps.resume.Put(t.peerHalf[:], v)
}

func (h *Host) delResume(t *ticket) { _ = h.maps.resume.Delete(t.peerHalf[:]) }

func tupleKey(local, remote net.Addr) []byte {
	k := make([]byte, tupleSize)
	l, r := local.(*net.TCPAddr), remote.(*net.TCPAddr)
	la, _ := netip.AddrFromSlice(l.IP)
	ra, _ := netip.AddrFromSlice(r.IP)
	a16, b16 := la.As16(), ra.As16()
	copy(k[0:], a16[:])
	copy(k[16:], b16[:])
	binary.NativeEndian.PutUint32(k[32:], uint32(l.Port))
	binary.NativeEndian.PutUint32(k[36:], uint32(r.Port))
	return k
}

// settings are the TCP-ENO settings of cfg, with t's resumption suboption
// when resuming.
func settings(cfg *Config, t *ticket) eno.Settings {
	s := eno.Settings{PassiveRole: cfg.PassiveRole, AppAware: cfg.AppAware, AppAwareMandatory: cfg.AppAwareMandatory}
	if t != nil {
		// The resumption offer goes first: most preferred, last on the
		// wire, where its data needs no length byte.
		s.Offers = append(s.Offers, eno.Offer{TEP: eno.TEP(t.tep), Data: t.suboption()})
	}
	for _, tep := range cfg.teps() {
		if t == nil || tep != t.tep {
			s.Offers = append(s.Offers, eno.Offer{TEP: eno.TEP(tep)})
		}
	}
	// Our TEPs are all tcpcrypt's; a suboption with data is valid only as
	// the matching resumption answer (RFC 8548 §3.5: ignore any other).
	s.Valid = func(c eno.Candidate) bool {
		if !tcpcrypt.TEP(c.TEP).Valid() {
			return false
		}
		if !c.Peer.V() || c.Role == eno.RoleB {
			return true
		}
		half, _, ok := resumeData(c.Peer.Data)
		return ok && t != nil && tcpcrypt.TEP(c.TEP) == t.tep && string(half) == string(t.peerHalf[:])
	}
	return s
}

// synRoom is the option space Linux leaves in a SYN with all its options.
const synRoom = 20

// Dial opens a TCP connection to addr with the host's configuration.
func (h *Host) Dial(ctx context.Context, network, addr string) (*Conn, error) {
	return h.DialConfig(ctx, network, addr, h.cfg)
}

// DialConfig opens a TCP connection to addr, negotiates TCP-ENO in its
// handshake and runs tcpcrypt over it.
func (h *Host) DialConfig(ctx context.Context, network, addr string, cfg Config) (*Conn, error) {
	raddr, err := net.ResolveTCPAddr(network, addr)
	if err != nil {
		return nil, err
	}
	var t *ticket
	if !cfg.NoCache {
		t = h.cache.offer(peerAddr(raddr))
	}
	set := settings(&cfg, t)
	// Linux's own SYN options (MSS, SACK permitted, timestamps, window
	// scale) take 20 of the 40 bytes.
	opt := make([]byte, synRoom)
	n, err := set.PutSYN(opt)
	if err != nil && t != nil {
		t = nil // no room for the resumption suboption: offer fresh TEPs
		set = settings(&cfg, nil)
		n, err = set.PutSYN(opt)
	}
	if err != nil {
		return nil, err
	}
	opt = opt[:n]
	var cookie uint64
	d := net.Dialer{LocalAddr: laddr(cfg.LocalAddr), Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			cookie, serr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE)
			if serr != nil {
				return
			}
			v := make([]byte, dvSize)
			v[dvOptLen] = byte(len(opt))
			copy(v[dvOpt:], opt)
			serr = h.maps.dial.Put(cookie, v)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		if cookie != 0 {
			h.maps.dial.Delete(cookie)
		}
		return nil, err
	}
	tcp := nc.(*net.TCPConn)
	v := make([]byte, dvSize)
	lerr := h.maps.dial.Lookup(cookie, v)
	// The entry stays while the program must still send ENO options: until
	// the peer's first non-SYN segment, which the key exchange waits for;
	// a resumed connection drops it when it closes.
	fallback := func(r eno.Reason) (*Conn, error) {
		h.maps.dial.Delete(cookie)
		return plainConn(tcp, r, &cfg)
	}
	if lerr != nil || v[dvDone] == 0 {
		return fallback(eno.NoOption)
	}
	area, ok := optionsArea(v[dvHdr : dvHdr+int(v[dvHdrLen])])
	if !ok {
		return fallback(eno.BadTCPOptions)
	}
	out := set.NegotiateOptions(opt, area)
	if !out.OK() {
		return fallback(out.Reason)
	}
	if !out.Peer().V() {
		t = nil // B chose a fresh key exchange; the secret stays used
	}
	c, err := h.startSession(tcp, &out, t, &cfg)
	if err != nil || !c.info.Resumed {
		h.maps.dial.Delete(cookie)
	} else {
		c.onClose = func() { h.maps.dial.Delete(cookie) }
	}
	return c, err
}

// laddr avoids a typed nil in the net.Addr interface.
func laddr(a *net.TCPAddr) net.Addr {
	if a == nil {
		return nil
	}
	return a
}

// optionsArea returns the options of a TCP header.
func optionsArea(hdr []byte) ([]byte, bool) {
	if len(hdr) < 20 {
		return nil, false
	}
	doff := int(hdr[12]>>4) * 4
	if doff < 20 || doff > len(hdr) {
		return nil, false
	}
	return hdr[20:doff], true
}

// Listener accepts connections that negotiated (or fell back) in their
// handshake; Accept returns each after its key exchange.
type Listener struct {
	h    *Host
	cfg  Config
	ln   *net.TCPListener
	port uint32
	set  eno.Settings
	ch   chan acceptResult
	done chan struct{}
	once sync.Once
}

type acceptResult struct {
	c   *Conn
	err error
}

// Listen listens on a TCP address with the host's configuration.
func (h *Host) Listen(network, addr string) (*Listener, error) {
	return h.ListenConfig(network, addr, h.cfg)
}

// ListenConfig listens on a TCP address (network "tcp4" or "tcp6"; "tcp"
// picks by the address).
func (h *Host) ListenConfig(network, addr string, cfg Config) (*Listener, error) {
	la, err := net.ResolveTCPAddr(network, addr)
	if err != nil {
		return nil, err
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(nil)
	if ip4 := la.IP.To4(); ip4 != nil || la.IP == nil && network == "tcp4" {
		family = unix.AF_INET
		s := &unix.SockaddrInet4{Port: la.Port}
		copy(s.Addr[:], ip4)
		sa = s
	} else {
		s := &unix.SockaddrInet6{Port: la.Port}
		copy(s.Addr[:], la.IP.To16())
		sa = s
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Listener, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("hostmode: listen %s: %w", addr, err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	// The SYN's options, for the transcript and the negotiation.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_SAVE_SYN, 1); err != nil {
		return fail(err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return fail(err)
	}
	var port int
	switch b := bound.(type) {
	case *unix.SockaddrInet4:
		port = b.Port
	case *unix.SockaddrInet6:
		port = b.Port
	}
	// B's answer: global suboption with b = 1 (RFC 8547 §4.2) and the TEPs
	// in increasing priority (§4.5).
	lv := make([]byte, lvSize)
	g := eno.GlobalB
	if cfg.AppAware {
		g |= eno.GlobalA
	}
	lv[lvGlobal] = byte(g)
	teps := cfg.teps()
	if len(teps) > 4 {
		teps = teps[:4]
	}
	lv[lvN] = byte(len(teps))
	for i, t := range teps {
		lv[lvTEPs+len(teps)-1-i] = byte(t)
	}
	if err := h.maps.listen.Put(uint32(port), lv); err != nil {
		return fail(err)
	}
	if err := unix.Listen(fd, 1024); err != nil {
		h.maps.listen.Delete(uint32(port))
		return fail(err)
	}
	f := os.NewFile(uintptr(fd), "hostmode-listener")
	fl, err := net.FileListener(f)
	f.Close()
	if err != nil {
		h.maps.listen.Delete(uint32(port))
		return nil, err
	}
	l := &Listener{h: h, cfg: cfg, ln: fl.(*net.TCPListener), port: uint32(port),
		set:  eno.Settings{AppAware: cfg.AppAware, AppAwareMandatory: cfg.AppAwareMandatory},
		ch:   make(chan acceptResult, 16),
		done: make(chan struct{})}
	go l.loop()
	return l, nil
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Accept returns the next connection whose handshake finished. Connections
// whose key exchange failed are reset and skipped.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptConn() }

// AcceptConn is Accept with the concrete type.
func (l *Listener) AcceptConn() (*Conn, error) {
	for {
		select {
		case r := <-l.ch:
			if r.err != nil && r.c == nil && !errors.Is(r.err, net.ErrClosed) {
				continue // one connection's failure, not the listener's
			}
			return r.c, r.err
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
}

// Close stops listening.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	l.h.maps.listen.Delete(l.port)
	return l.ln.Close()
}

func (l *Listener) loop() {
	for {
		tcp, err := l.ln.AcceptTCP()
		if err != nil {
			select {
			case l.ch <- acceptResult{err: net.ErrClosed}:
			case <-l.done:
			}
			return
		}
		go func() {
			c, err := l.h.accepted(tcp, &l.cfg)
			if err != nil {
				return
			}
			select {
			case l.ch <- acceptResult{c: c}:
			case <-l.done:
				c.Close()
			}
		}()
	}
}

// savedSYNOptions returns the TCP options of the SYN that opened tcp.
func savedSYNOptions(tcp *net.TCPConn) ([]byte, error) {
	rc, err := tcp.SyscallConn()
	if err != nil {
		return nil, err
	}
	var syn []byte
	var serr error
	err = rc.Control(func(fd uintptr) {
		buf := make([]byte, 512)
		var n int
		n, serr = getsockoptBytes(int(fd), unix.IPPROTO_TCP, unix.TCP_SAVED_SYN, buf)
		syn = buf[:n]
	})
	if err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	if len(syn) < 1 {
		return nil, errors.New("hostmode: no saved SYN")
	}
	var ihl int
	switch syn[0] >> 4 {
	case 4:
		ihl = int(syn[0]&0xf) * 4
	case 6:
		ihl = 40
		if len(syn) < 40 || syn[6] != unix.IPPROTO_TCP {
			return nil, errors.New("hostmode: saved SYN has IPv6 extension headers")
		}
	default:
		return nil, errors.New("hostmode: saved SYN is not IP")
	}
	if len(syn) < ihl {
		return nil, errors.New("hostmode: saved SYN truncated")
	}
	area, ok := optionsArea(syn[ihl:])
	if !ok {
		return nil, errors.New("hostmode: saved SYN has a bad TCP header")
	}
	return area, nil
}

func getsockoptBytes(fd, level, opt int, buf []byte) (int, error) {
	l := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafePointer(buf)), uintptr(unsafePointer32(&l)), 0)
	if e != 0 {
		return 0, e
	}
	return int(l), nil
}

// accepted judges the handshake of an accepted connection and runs the key
// exchange.
func (h *Host) accepted(tcp *net.TCPConn, cfg *Config) (*Conn, error) {
	key := tupleKey(tcp.LocalAddr(), tcp.RemoteAddr())
	v := make([]byte, pvSize)
	err := h.maps.pass.Lookup(key, v)
	_ = h.maps.pass.Delete(key)
	synArea, serr := savedSYNOptions(tcp)
	if serr != nil {
		return plainConn(tcp, eno.BadTCPOptions, cfg)
	}
	if err != nil || v[pvSynLen] < 2 {
		sc := eno.ScanOptions(synArea)
		if !sc.HasENO() {
			return plainConn(tcp, eno.NoOption, cfg)
		}
		return plainConn(tcp, eno.NoCommonTEP, cfg)
	}
	synack := v[pvSynack : pvSynack+int(v[pvSynLen])]
	// A ticket the program answered with, if it did.
	var t *ticket
	if so, perr := eno.ParseSYN(synack); perr == nil && so.Len() == 1 && so.At(0).V() {
		if t = h.cache.answered(so.At(0).Data); t != nil {
			// The program may have shortened the nonce to make room.
			_, nonce, _ := resumeData(so.At(0).Data)
			t.nonce = append([]byte(nil), nonce...)
		}
	}
	set := eno.Settings{AppAware: cfg.AppAware, AppAwareMandatory: cfg.AppAwareMandatory}
	set.Valid = func(c eno.Candidate) bool {
		if !tcpcrypt.TEP(c.TEP).Valid() {
			return false
		}
		if !c.Local.V() {
			return true
		}
		half, _, ok := resumeData(c.Peer.Data)
		return ok && t != nil && tcpcrypt.TEP(c.TEP) == t.tep && string(half) == string(t.peerHalf[:])
	}
	out := set.NegotiateOptions(synack, synArea)
	if !out.OK() {
		return plainConn(tcp, out.Reason, cfg)
	}
	// RFC 8547 §4.6: the first ACK must carry ENO too.
	ack, ok := optionsArea(v[pvAck : pvAck+int(v[pvAckLen])])
	ackScan := eno.ScanOptions(ack)
	if !ok || !ackScan.HasENO() {
		return plainConn(tcp, eno.NoOptionInACK, cfg)
	}
	if !out.Local().V() {
		t = nil
	}
	return h.startSession(tcp, &out, t, cfg)
}
