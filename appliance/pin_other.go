//go:build !linux

package appliance

import (
	"errors"
	"runtime"
)

// pinThread is not supported here: Options.CPUs must stay empty.
func pinThread(cpu int) error {
	return errors.New("pinning a worker to a CPU is supported on Linux only, not " + runtime.GOOS)
}
