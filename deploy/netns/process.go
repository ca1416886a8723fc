package netns

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
const StopGrace = 5 * time.Second

// maxOutput caps the captured output of a background process; older bytes
// are dropped (a chatty daemon must not eat the test's memory).
const maxOutput = 4 << 20

// Process is a background command in a namespace, in its own process group
// so that Stop reaches its children too. Its stdout and stderr are captured.
type Process struct {
	Name string
	cmd  *exec.Cmd
	out  outBuf
	done chan struct{}
	err  error // valid after done is closed
	once sync.Once
}

// outBuf is a size-capped, goroutine-safe output buffer.
type outBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// changed is closed and replaced at every write, to wake WaitOutput.
	changed chan struct{}
}

func (b *outBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - maxOutput; over > 0 {
		b.buf.Next(over)
	}
	close(b.changed)
	b.changed = make(chan struct{})
	return len(p), nil
}

func (b *outBuf) snapshot() (string, chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

// StartProcess starts args inside namespace ns (via `ip netns exec`, which
// execs the command, so the process id is the command's own) in a new process
// group with its output captured. name is used in messages only.
func StartProcess(ns, name string, args ...string) (*Process, error) {
	full := ExecArgs(ns, args...)
	p := &Process{Name: name, done: make(chan struct{})}
	p.out.changed = make(chan struct{})
	p.cmd = exec.Command(full[0], full[1:]...)
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns everything the process printed so far (stdout and stderr interleaved).
func (p *Process) Output() string {
	s, _ := p.out.snapshot()
	return s
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its error if so.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Wait waits for the process to exit on its own and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// WaitOutput waits until the output contains substr. It fails when the
// process exits first or the timeout passes; the error quotes the output.
func (p *Process) WaitOutput(substr string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s, changed := p.out.snapshot()
		if strings.Contains(s, substr) {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			if s = p.Output(); strings.Contains(s, substr) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before printing %q; output:\n%s", p.Name, p.err, substr, tail(s))
		case <-deadline.C:
			return fmt.Errorf("%s: no %q within %v; output:\n%s", p.Name, substr, timeout, tail(p.Output()))
		}
	}
}

// Signal sends sig to the whole process group.
func (p *Process) Signal(sig syscall.Signal) error {
	err := syscall.Kill(-p.Pid(), sig)
	if err == syscall.ESRCH {
		return nil
	}
	return err
}

// StopWith sends sig to the process group, waits up to grace for the process
// to exit, then kills the group. It returns the process's exit error, which
// is expected to be non-nil for a signalled process. Stop is idempotent.
func (p *Process) StopWith(sig syscall.Signal, grace time.Duration) error {
	p.once.Do(func() {
		select {
		case <-p.done:
		default:
			_ = p.Signal(sig)
			select {
			case <-p.done:
			case <-time.After(grace):
				_ = p.Signal(syscall.SIGKILL)
				<-p.done
			}
		}
		// Children that ignored the signal would otherwise survive their leader.
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	})
	<-p.done
	return p.err
}

// Stop is StopWith(SIGTERM, StopGrace).
func (p *Process) Stop() error { return p.StopWith(syscall.SIGTERM, StopGrace) }

func tail(s string) string {
	const n = 2000
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Alive reports whether a process with this id exists (used by tests that
// check nothing survives cleanup).
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A zombie still answers kill(0); look at its state.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
