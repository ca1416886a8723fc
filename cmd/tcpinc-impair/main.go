// Command tcpinc-impair is the impairment bump of the test topology's
// untrusted link: it forwards frames between two interfaces and holds back
// a fraction of them so later frames overtake them (reordering), and can
// send a fraction twice (duplication), and shift TCP sequence numbers as
// a sequence-randomising firewall does (--seq-shift-a/-b; --sack-raw
// leaves SACK blocks unchanged, a known bug of such boxes). Decisions are
// reproducible from --seed. It prints its counters when it stops (SIGINT/SIGTERM). Loss comes
// from nftables on rtr (topology.SetLoss), not from here.
//
// Splice it into a running topology (deploy/topology, without VLAN) and run it:
//
//	tcpinc-impair insert --prefix tci-          # gwA:out — tci-imp[bumpA | bumpB] — rtr:toA
//	ip netns exec tci-imp tcpinc-impair --a bumpA --b bumpB --reorder 0.02 --hold-frames 3 --seed 1
//	tcpinc-impair remove --prefix tci-          # deletes tci-imp (gwA:out goes with it: tear the topology down after)
//
// Tests do the same through package deploy/impair (Insert, Link.Start).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/deploy/impair"
	"github.com/tcpinc/tcpinc/deploy/netns"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "insert" || os.Args[1] == "remove") {
		fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
		prefix := fs.String("prefix", "tci-", "namespace prefix of the topology")
		_ = fs.Parse(os.Args[2:])
		var err error
		if os.Args[1] == "insert" {
			var l *impair.Link
			if l, err = impair.Insert(*prefix); err == nil {
				fmt.Printf("inserted %s between %sgwA:out and %srtr:toA; run: ip netns exec %s tcpinc-impair --a %s --b %s ...\n",
					l.NS, *prefix, *prefix, l.NS, impair.PortA, impair.PortB)
			}
		} else {
			err = netns.Delete(*prefix+impair.Node, 2*time.Second)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "tcpinc-impair:", err)
			os.Exit(1)
		}
		return
	}
	a := flag.String("a", impair.PortA, "first interface")
	b := flag.String("b", impair.PortB, "second interface")
	var cfg impair.Config
	flag.Float64Var(&cfg.Reorder, "reorder", 0, "fraction of frames held back (0..1), each direction")
	flag.IntVar(&cfg.HoldFrames, "hold-frames", 3, "release a held frame after this many later frames (0: by time only)")
	flag.DurationVar(&cfg.HoldTime, "hold-time", 10*time.Millisecond, "release a held frame after this long at the latest")
	flag.Float64Var(&cfg.Duplicate, "dup", 0, "fraction of frames sent twice (0..1)")
	flag.IntVar(&cfg.MaxHeld, "max-held", 64, "frames held at once per direction")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "random seed (direction b->a uses seed+1)")
	shiftA := flag.Uint("seq-shift-a", 0, "add this to the sequence numbers of TCP segments from a to b (and take it off the ACKs the other way): a sequence-randomising firewall")
	shiftB := flag.Uint("seq-shift-b", 0, "the same for segments from b to a")
	rawSACK := flag.Bool("sack-raw", false, "with a sequence shift, leave SACK blocks unchanged (the firewall bug)")
	flag.Parse()
	f, err := impair.NewForwarder(*a, *b, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpinc-impair:", err)
		os.Exit(1)
	}
	if *shiftA != 0 || *shiftB != 0 {
		f.Shift = &impair.SeqShift{Offset: [2]uint32{uint32(*shiftA), uint32(*shiftB)}, RawSACK: *rawSACK}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	f.Start()
	c := f.Core(0).Config()
	fmt.Printf("tcpinc-impair forwarding %s<->%s reorder=%g hold_frames=%d hold_time=%v dup=%g seed=%d seq_shift=%d,%d sack_raw=%t\n",
		*a, *b, c.Reorder, c.HoldFrames, c.HoldTime, c.Duplicate, c.Seed, *shiftA, *shiftB, *rawSACK)
	for s := <-sig; s == syscall.SIGUSR1; s = <-sig {
		fmt.Print("counters now: ", f.Report()) // SIGUSR1: the counters so far, and go on
	}
	f.Stop()
	fmt.Print(f.Report())
	f.Close()
}
