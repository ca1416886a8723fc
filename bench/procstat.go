package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUTimes is the aggregate "cpu" line of /proc/stat, in clock ticks.
type CPUTimes struct {
	Busy, Total uint64
}

// ParseProcStat reads the aggregate cpu line of /proc/stat. Idle time is
// idle + iowait; everything else (user, nice, system, irq, softirq, steal)
// is busy. guest/guest_nice are already counted in user/nice.
func ParseProcStat(b []byte) (CPUTimes, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var v [8]uint64
		for i := 0; i < len(v) && i+1 < len(f); i++ {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return CPUTimes{}, fmt.Errorf("/proc/stat: %q: %w", f[i+1], err)
			}
			v[i] = n
		}
		var total uint64
		for _, x := range v {
			total += x
		}
		idle := v[3] + v[4]
		return CPUTimes{Busy: total - idle, Total: total}, nil
	}
	return CPUTimes{}, fmt.Errorf("/proc/stat: no aggregate cpu line")
}

// ReadCPUTimes samples /proc/stat.
func ReadCPUTimes() (CPUTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}, err
	}
	return ParseProcStat(b)
}

// BusyPercent is the whole-VM busy share between two samples (100 = every
// CPU busy all the time), the vm_busy column of bench/RESULTS.md.
func BusyPercent(before, after CPUTimes) float64 {
	if after.Total <= before.Total {
		return 0
	}
	return 100 * float64(after.Busy-before.Busy) / float64(after.Total-before.Total)
}
