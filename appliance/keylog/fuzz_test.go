package keylog_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/keylog"
	"github.com/tcpinc/tcpinc/appliance/keylog/keylogtest"
	"github.com/tcpinc/tcpinc/appliance/pcapng"
)

// FuzzDecrypt: a mutated capture of a real connection, with its real keys,
// never panics the decoder, and what it returns as plaintext is only ever
// from frames that authenticated: a prefix of what one side sent.
func FuzzDecrypt(f *testing.F) {
	data := [2][][]byte{chunks("c", 3, 300), chunks("s", 2, 200)}
	res, err := keylogtest.Build(keylogtest.Options{Data: data, RekeyAt: [2]int{1, 1}, MSS: 250})
	if err != nil {
		f.Fatal(err)
	}
	keys, err := keylog.Read(strings.NewReader(res.KeyLog))
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := pcapng.NewWriter(&buf)
	for _, fr := range res.Frames {
		_ = w.WritePacket(time.Unix(0, 0), fr)
	}
	f.Add(buf.Bytes())
	all := [2][]byte{bytes.Join(data[0], nil), bytes.Join(data[1], nil)}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := pcapng.NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		conns, err := keylog.Decrypt(r, keys)
		if err != nil {
			return
		}
		for _, c := range conns {
			for _, s := range c.Streams {
				if !bytes.HasPrefix(all[0], s.Plaintext) && !bytes.HasPrefix(all[1], s.Plaintext) {
					t.Fatalf("plaintext that was never sent: %q", s.Plaintext)
				}
			}
		}
	})
}
