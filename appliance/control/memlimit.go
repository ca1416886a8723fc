package control

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// The per-flow buffers' budget when the file leaves engine.memory_limit at
// 0: a quarter of the machine's memory, at least 1 GiB and at most 16 GiB.
// A flow moving bulk data at full window may hold three buffers of up to
// 4 MiB (engine.Default*Bytes); a budget fixed at 1 GiB left new
// connections in plain TCP once about 85 such flows held it, on a box with
// memory to spare. A quarter leaves the rest to the kernel's own packet
// buffers (its tcp_mem is about a tenth by default) and the daemon's heap.
const (
	minAutoMemoryLimit = 1 << 30
	maxAutoMemoryLimit = 16 << 30
)

// AutoMemoryLimit is the budget for a machine with total bytes of memory
// (0: unknown, the least).
func AutoMemoryLimit(total int64) int64 {
	return min(max(total/4, minAutoMemoryLimit), maxAutoMemoryLimit)
}

// memTotal reads MemTotal from /proc/meminfo (a variable for the tests);
// 0 when it cannot.
var memTotal = func() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return parseMemTotal(b)
}

// parseMemTotal finds "MemTotal: N kB" in the text of /proc/meminfo.
func parseMemTotal(b []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 3 && string(f[0]) == "MemTotal:" && string(f[2]) == "kB" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil || kb < 0 {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
