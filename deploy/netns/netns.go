// Package netns builds small network-namespace labs with the iproute2, ethtool
// and nft commands: namespaces, veth pairs, addresses, routes, sysctls, offload
// settings, commands and background processes inside a namespace.
//
// An Env registers everything it creates; Close undoes it in reverse order and
// keeps going when one step fails, so a test that dies half way still leaves
// the machine clean. Namespace deletion also kills every process still inside
// the namespace (found with `ip netns pids`), so nothing outlives the lab.
//
// Everything here needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CommandTimeout bounds every configuration command (ip, ethtool, nft, sysctl).
// These commands return in milliseconds; a hang means something is broken.
const CommandTimeout = 30 * time.Second

// CmdError is returned when a command exits non-zero; it keeps the output so
// the caller's error message says why.
type CmdError struct {
	Args   []string
	Output string
	Err    error
}

func (e *CmdError) Error() string {
	out := strings.TrimSpace(e.Output)
	if out == "" {
		return fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, out)
}

func (e *CmdError) Unwrap() error { return e.Err }

// RequireRoot returns an error unless the process runs as root.
func RequireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root (network namespaces, veth, nftables)")
	}
	return nil
}

// Cmd runs a host command (not inside a namespace) and returns its combined output.
func Cmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	return CmdContext(ctx, args...)
}

// CmdContext is Cmd with a caller-supplied context.
func CmdContext(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), &CmdError{Args: args, Output: out.String(), Err: err}
	}
	return out.String(), nil
}

// ExecArgs returns the argument vector that runs args inside namespace ns.
// An empty ns means the current (host) namespace.
func ExecArgs(ns string, args ...string) []string {
	if ns == "" {
		return args
	}
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

// Run runs a command inside namespace ns and returns its combined output.
func Run(ns string, args ...string) (string, error) {
	return Cmd(ExecArgs(ns, args...)...)
}

// RunContext is Run with a caller-supplied context (for long commands such as iperf3).
func RunContext(ctx context.Context, ns string, args ...string) (string, error) {
	return CmdContext(ctx, ExecArgs(ns, args...)...)
}

// Exists reports whether a namespace named ns exists.
func Exists(ns string) bool {
	_, err := os.Stat("/run/netns/" + ns)
	return err == nil
}

// List returns the names of all namespaces that start with prefix.
func List(prefix string) ([]string, error) {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Pids returns the ids of the processes whose network namespace is ns.
func Pids(ns string) ([]int, error) {
	out, err := Cmd("ip", "netns", "pids", ns)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Delete kills every process left in namespace ns (SIGTERM, then SIGKILL
// after grace) and deletes the namespace. Deleting a namespace that does not
// exist is not an error. Interfaces inside it (and their veth peers) go with it.
func Delete(ns string, grace time.Duration) error {
	if !Exists(ns) {
		return nil
	}
	if err := killAll(ns, grace); err != nil {
		return err
	}
	if _, err := Cmd("ip", "netns", "del", ns); err != nil && Exists(ns) {
		return err
	}
	return RemoveVLANPins(ns)
}

func killAll(ns string, grace time.Duration) error {
	pids, err := Pids(ns)
	if err != nil || len(pids) == 0 {
		return err
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if pids, err = Pids(ns); err != nil || len(pids) == 0 {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	for i := 0; i < 100; i++ {
		if pids, err = Pids(ns); err != nil || len(pids) == 0 {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("netns %s: processes %v survive SIGKILL", ns, pids)
}

// undo is one registered cleanup step.
type undo struct {
	what string
	fn   func() error
}

// Env creates namespace objects and remembers how to remove them.
// Its methods are safe for concurrent use.
type Env struct {
	mu    sync.Mutex
	undos []undo
	// Logf, if set, receives one line per configuration command (debugging aid).
	Logf func(format string, args ...any)
}

// NewEnv returns an empty Env.
func NewEnv() *Env { return &Env{} }

// Defer registers fn to run at Close (in reverse order of registration).
func (e *Env) Defer(what string, fn func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.undos = append(e.undos, undo{what, fn})
}

// Close runs every registered cleanup step in reverse order. A failing step
// does not stop the others; all failures are joined into the returned error.
// Close is idempotent.
func (e *Env) Close() error {
	e.mu.Lock()
	undos := e.undos
	e.undos = nil
	e.mu.Unlock()
	var errs []error
	for i := len(undos) - 1; i >= 0; i-- {
		if err := undos[i].fn(); err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", undos[i].what, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Env) run(ns string, args ...string) (string, error) {
	if e.Logf != nil {
		e.Logf("[%s] %s", ns, strings.Join(args, " "))
	}
	return Run(ns, args...)
}

// Run runs a command inside namespace ns.
func (e *Env) Run(ns string, args ...string) (string, error) { return e.run(ns, args...) }

// AddNamespace creates namespace ns with its loopback up, and registers its
// deletion (which also kills processes left inside). A stale namespace of the
// same name, left by a crashed run, is deleted first.
func (e *Env) AddNamespace(ns string) error {
	if err := Delete(ns, time.Second); err != nil {
		return fmt.Errorf("remove stale namespace %s: %w", ns, err)
	}
	if _, err := e.run("", "ip", "netns", "add", ns); err != nil {
		return err
	}
	e.Defer("namespace "+ns, func() error { return Delete(ns, 2*time.Second) })
	_, err := e.run("", "ip", "-n", ns, "link", "set", "lo", "up")
	return err
}

// AddVeth creates a veth pair with end ifA in namespace nsA and end ifB in
// nsB, both up, with the given MTU (0 keeps the default). The pair is created
// directly inside the namespaces, so no name is ever taken in the host
// namespace. Its deletion is registered (a no-op once the namespace is gone).
func (e *Env) AddVeth(nsA, ifA, nsB, ifB string, mtu int) error {
	return e.AddVethQueues(nsA, ifA, nsB, ifB, mtu, 0)
}

// AddVethQueues is AddVeth with queues RX and TX queues on both ends (0
// keeps the default, one).
func (e *Env) AddVethQueues(nsA, ifA, nsB, ifB string, mtu, queues int) error {
	var end []string
	if mtu > 0 {
		end = append(end, "mtu", fmt.Sprint(mtu))
	}
	if queues > 0 {
		end = append(end, "numrxqueues", fmt.Sprint(queues), "numtxqueues", fmt.Sprint(queues))
	}
	args := append([]string{"ip", "-n", nsA, "link", "add", ifA}, end...)
	args = append(args, "type", "veth", "peer", "name", ifB, "netns", nsB)
	args = append(args, end...)
	if _, err := e.run("", args...); err != nil {
		return err
	}
	e.Defer("veth "+nsA+":"+ifA, func() error {
		if !Exists(nsA) {
			return nil
		}
		if _, err := Cmd("ip", "-n", nsA, "link", "show", ifA); err != nil {
			return nil // already gone (with its namespace or its peer)
		}
		_, err := Cmd("ip", "-n", nsA, "link", "del", ifA)
		return err
	})
	if err := e.LinkUp(nsA, ifA); err != nil {
		return err
	}
	return e.LinkUp(nsB, ifB)
}

// AddBridge creates a kernel bridge named br in ns with the given member
// ports (STP off, no forwarding delay, no multicast snooping: a plain hub
// with learning, the kernel-forwarding control), and brings it up.
func (e *Env) AddBridge(ns, br string, ports ...string) error {
	if _, err := e.run("", "ip", "-n", ns, "link", "add", br, "type", "bridge",
		"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"); err != nil {
		return err
	}
	for _, p := range ports {
		if _, err := e.run("", "ip", "-n", ns, "link", "set", p, "master", br); err != nil {
			return err
		}
	}
	return e.LinkUp(ns, br)
}

// LinkUp sets an interface up.
func (e *Env) LinkUp(ns, iface string) error {
	_, err := e.run("", "ip", "-n", ns, "link", "set", iface, "up")
	return err
}

// SetMTU sets an interface's MTU.
func (e *Env) SetMTU(ns, iface string, mtu int) error {
	_, err := e.run("", "ip", "-n", ns, "link", "set", iface, "mtu", fmt.Sprint(mtu))
	return err
}

// AddAddr adds an address in CIDR form. IPv6 addresses get `nodad` so they
// are usable at once (no duplicate address detection delay).
func (e *Env) AddAddr(ns, iface, cidr string) error {
	args := []string{"ip", "-n", ns, "addr", "add", cidr, "dev", iface}
	if strings.Contains(cidr, ":") {
		args = []string{"ip", "-n", ns, "-6", "addr", "add", cidr, "dev", iface, "nodad"}
	}
	_, err := e.run("", args...)
	return err
}

// AddRoute adds (or replaces) a route: spec is what follows `ip route replace`,
// e.g. "default", "via", "10.0.0.1". The family follows the first address in spec.
func (e *Env) AddRoute(ns string, spec ...string) error {
	args := []string{"ip", "-n", ns}
	for _, s := range spec {
		if strings.Contains(s, ":") {
			args = append(args, "-6")
			break
		}
	}
	args = append(append(args, "route", "replace"), spec...)
	_, err := e.run("", args...)
	return err
}

// Sysctl sets key (dotted form) to value inside ns.
func (e *Env) Sysctl(ns, key, value string) error {
	_, err := e.run(ns, "sysctl", "-q", "-w", key+"="+value)
	return err
}

// Ethtool applies `ethtool -K iface settings...` inside ns, e.g.
// ("tx", "off", "tso", "off"). Settings the device cannot change are reported
// by ethtool as "Could not change any device features" and returned as errors.
func (e *Env) Ethtool(ns, iface string, settings ...string) error {
	_, err := e.run(ns, append([]string{"ethtool", "-K", iface}, settings...)...)
	return err
}

// Nft feeds an nftables script to `nft -f -` inside ns.
func (e *Env) Nft(ns, script string) error {
	if e.Logf != nil {
		e.Logf("[%s] nft -f - <<%q", ns, script)
	}
	return Nft(ns, script)
}

// Nft feeds an nftables script to `nft -f -` inside ns.
func Nft(ns, script string) error {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	args := ExecArgs(ns, "nft", "-f", "-")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &CmdError{Args: args, Output: string(out) + "\nscript:\n" + script, Err: err}
	}
	return nil
}

// Start starts a background process inside ns (see StartProcess) and
// registers its stop at Close.
func (e *Env) Start(ns, name string, args ...string) (*Process, error) {
	if e.Logf != nil {
		e.Logf("[%s] start %s: %s", ns, name, strings.Join(args, " "))
	}
	p, err := StartProcess(ns, name, args...)
	if err != nil {
		return nil, err
	}
	e.Defer("process "+name, func() error { p.Stop(); return nil })
	return p, nil
}
