package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tcpinc/tcpinc/appliance/keylog"
	"github.com/tcpinc/tcpinc/appliance/pcapng"
)

// decode reassembles the tcpcrypt connections of a capture and writes the
// plaintext of each direction whose keys the key log (tcpincd --key-log)
// holds: one file per direction in DIR, named after the connection number
// and the direction's addresses. It works offline: no daemon is asked.
func (cl *cli) decode(args []string) error {
	fs := flag.NewFlagSet("decode", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	keyFile := fs.String("keylog", "", "key log written by tcpincd --key-log")
	dir := fs.String("o", ".", "directory for the plaintext files")
	if err := fs.Parse(args); err != nil {
		return usagef("decode: %v", err)
	}
	if *keyFile == "" || fs.NArg() != 1 {
		return usagef("decode needs --keylog FILE and one CAPTURE")
	}
	kf, err := os.Open(*keyFile)
	if err != nil {
		return err
	}
	keys, err := keylog.Read(kf)
	kf.Close()
	if err != nil {
		return err
	}
	cf, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer cf.Close()
	r, err := pcapng.NewReader(cf)
	if err != nil {
		return err
	}
	conns, err := keylog.Decrypt(r, keys)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	decoded := 0
	for i, c := range conns {
		fmt.Fprintf(cl.out, "connection %d: %s -> %s", i+1, c.Client, c.Server)
		if c.Key == nil {
			fmt.Fprintf(cl.out, ": not in the key log (%d and %d bytes captured)\n", c.Streams[0].Captured, c.Streams[1].Captured)
			continue
		}
		mode := "fresh key exchange"
		if c.Key.Resumed() {
			mode = "resumed"
		}
		fmt.Fprintf(cl.out, ": session %x, %s, %s\n", c.Key.SessionID[:], c.Key.Suite, mode)
		for _, s := range c.Streams {
			name := fmt.Sprintf("%d-%s-%s.bin", i+1, fileAddr(s.Src.String()), fileAddr(s.Dst.String()))
			path := filepath.Join(*dir, name)
			if err := os.WriteFile(path, s.Plaintext, 0o600); err != nil {
				return err
			}
			var notes []string
			if s.FIN {
				notes = append(notes, "FINp")
			}
			if s.Gap {
				notes = append(notes, "bytes missing from the capture")
			}
			if s.Partial {
				notes = append(notes, "the capture ends inside a frame")
			}
			if !s.FIN && s.Err == nil {
				notes = append(notes, "no FINp in the capture")
			}
			if s.Err != nil {
				notes = append(notes, "stopped: "+s.Err.Error())
			}
			fmt.Fprintf(cl.out, "  %s -> %s: %d bytes in %d frames, %d key %s%s -> %s\n", s.Src, s.Dst,
				len(s.Plaintext), s.Frames, s.Generations, plural(int(s.Generations), "generation", "generations"),
				prefixed(strings.Join(notes, ", ")), path)
			if s.Frames > 0 {
				decoded++
			}
		}
	}
	if decoded == 0 {
		return errors.New("decode: no tcpcrypt stream of the capture could be decrypted with this key log")
	}
	return nil
}

func prefixed(s string) string {
	if s == "" {
		return ""
	}
	return ", " + s
}

// fileAddr makes addr:port safe in a file name.
func fileAddr(s string) string {
	return strings.NewReplacer(":", "_", "[", "", "]", "").Replace(s)
}
