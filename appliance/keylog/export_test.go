package keylog

import (
	"os"
	"time"
)

// NewWriterOn is a Writer on f whatever f is (Create refuses all but
// regular files): a pipe nobody reads, a file opened read-only.
func NewWriterOn(f *os.File) *Writer { return newWriter(f) }

// SetCloseWait shortens Close's wait for a slow file; the returned function
// puts it back.
func SetCloseWait(d time.Duration) (restore func()) {
	old := closeWait
	closeWait = d
	return func() { closeWait = old }
}
