// Command tcpcrypt-vectors writes tcpcrypt's known-answer vectors, one full
// session per TEP x AEAD pair computed from fixed inputs, to
// appliance/tcpcrypt/testdata/vectors.json (see the README there).
//
// Run it from the repository root after a change that is meant to alter the
// vectors:
//
//	go run ./cmd/tcpcrypt-vectors
//
// The package's tests regenerate the vectors in memory and fail if the
// committed file differs, so the file cannot drift from the code.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

func main() {
	out := flag.String("o", "appliance/tcpcrypt/testdata/vectors.json", "output file (- for stdout)")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "tcpcrypt-vectors:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	f, err := tcpcrypt.GenerateVectors()
	if err != nil {
		return err
	}
	b, err := tcpcrypt.MarshalVectors(f)
	if err != nil {
		return err
	}
	if out == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %d vectors to %s\n", len(f.Vectors), out)
	return nil
}
