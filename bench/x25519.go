package bench

import (
	"sync"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// X25519Rate measures what bounds fresh tcpcrypt connections: one X25519
// key generation plus one ECDH (the work each appliance does per fresh
// connection with TEP TCP_CRYPT_ECDHE_Curve25519), as jobs per second over
// d on workers goroutines (one per core wanted), each looping on its own.
// It runs the appliance's own X25519 (appliance/tcpcrypt), so the limit
// moves with the implementation tcpincd uses.
func X25519Rate(d time.Duration, workers int) (float64, error) {
	if workers < 1 {
		workers = 1
	}
	ka, err := tcpcrypt.KeyAgreementFor(tcpcrypt.TEPX25519)
	if err != nil {
		return 0, err
	}
	peer, err := ka.GenerateKey(nil)
	if err != nil {
		return 0, err
	}
	counts := make([]int, workers)
	errs := make([]error, workers)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				k, err := ka.GenerateKey(nil)
				if err == nil {
					_, err = ka.SharedSecret(k, peer.Public)
				}
				if err != nil {
					errs[w] = err
					return
				}
				counts[w]++
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	total := 0
	for w := range counts {
		if errs[w] != nil {
			return 0, errs[w]
		}
		total += counts[w]
	}
	return float64(total) / secs, nil
}
