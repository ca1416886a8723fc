//go:build !linux

package bump

import "errors"

// Only the AF_XDP backend waits in poll(2), and it is Linux-only.
func openEventfd() (int, error) { return -1, errors.New("bump: no eventfd on this system") }
func closeEventfd(int)          {}
func writeEventfd(int)          {}
func readEventfd(int)           {}
