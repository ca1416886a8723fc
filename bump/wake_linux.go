package bump

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

func openEventfd() (int, error) { return unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC) }

func closeEventfd(fd int) { _ = unix.Close(fd) }

func writeEventfd(fd int) {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(fd, one[:]) // EAGAIN: the counter is already non-zero
}

func readEventfd(fd int) {
	var b [8]byte
	_, _ = unix.Read(fd, b[:])
}
