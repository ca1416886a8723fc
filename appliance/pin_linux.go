package appliance

import "golang.org/x/sys/unix"

// pinThread restricts the calling OS thread (tid 0 = the caller) to cpu.
// The caller must have locked its goroutine to the thread.
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Zero()
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}
