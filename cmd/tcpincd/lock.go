package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir holds one lock file per (network namespace, interface) in use.
const lockDir = "/run/tcpincd"

// errBusy means another tcpincd holds an interface.
var errBusy = errors.New("another tcpincd is running on it")

// lockInterfaces takes an exclusive lock per interface of this network
// namespace, so that a second tcpincd on the same interfaces refuses to start
// instead of detaching the running one's XDP programs as stale. The locks
// are flock(2) locks: the kernel drops them when the process dies, so a
// crash never leaves one behind. Interface names repeat across namespaces
// (every test gateway has "in" and "out"), so the namespace's inode number
// is part of the name.
func lockInterfaces(names ...string) (unlock func(), err error) {
	var ns syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &ns); err != nil {
		return nil, fmt.Errorf("lock: network namespace: %w", err)
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	var files []*os.File
	unlock = func() {
		for _, f := range files {
			f.Close() // closing the last descriptor releases the flock
		}
	}
	for _, name := range names {
		path := filepath.Join(lockDir, fmt.Sprintf("netns%d-%s.lock", ns.Ino, name))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			unlock()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("interface %q: %w", name, errBusy)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		files = append(files, f)
	}
	return unlock, nil
}
