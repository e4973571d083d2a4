//go:build integration

// Bounded memory: 1 GiB each way through nginx and the gateway, with the gateway's RSS watched.

package tests

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

const (
	bigTransfer  = 1 << 30   // bytes each way; also the default --max-body, which admits it
	rssLimit     = 100 << 20 // the gateway's peak RSS must stay under this
	rssEvery     = 100 * time.Millisecond
	transferTime = 2 * time.Minute // bounds a hang; the transfer takes seconds
)

// rssSampler records the peak VmRSS of the gateway and of its workers while it runs.
type rssSampler struct {
	pid      int
	stopc    chan struct{}
	wg       sync.WaitGroup
	peak     int64 // KiB, the gateway
	workers  int64 // KiB, the largest worker
	samples  int
	firstErr error
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{pid: pid, stopc: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(rssEvery)
		defer tick.Stop()
		for {
			s.sample()
			select {
			case <-s.stopc:
				s.sample()
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	kib, err := testkit.StatusField(s.pid, "VmRSS")
	if err != nil {
		if s.firstErr == nil {
			s.firstErr = err
		}
		return
	}
	s.samples++
	s.peak = max(s.peak, kib)
	for _, w := range testkit.Children(s.pid) {
		if kib, err := testkit.StatusField(w.PID, "VmRSS"); err == nil {
			s.workers = max(s.workers, kib)
		}
	}
}

// stop ends the sampling; the fields are final after it returns.
func (s *rssSampler) stop() {
	close(s.stopc)
	s.wg.Wait()
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1 GiB each way; not with -short")
	}
	g := startGateway(t, gatewayConfig{workers: 1})
	n := startNginx(t, g.upstream)
	n.mustGet(t, "/pid", 200) // the worker is up: its start is not part of the measure

	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"upload 1 GiB", func(t *testing.T) {
			upload(t, n, "/stream/upload", bigTransfer, false, transferTime)
		}},
		{"download 1 GiB", func(t *testing.T) {
			download(t, n, fmt.Sprintf("/stream/download?size=%d", bigTransfer), bigTransfer, transferTime)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sampleRSS(g.pid())
			start := time.Now()
			tc.run(t)
			took := time.Since(start)
			s.stop()
			if s.firstErr != nil || s.samples < 2 {
				t.Fatalf("sampled the gateway's VmRSS %d times (%v): no measure", s.samples, s.firstErr)
			}
			hwm, err := testkit.StatusField(g.pid(), "VmHWM")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s in %v: %.0f MiB/s; gateway peak RSS %s (%d samples, VmHWM since start %s); largest worker RSS %s",
				tc.name, took.Round(time.Millisecond), float64(bigTransfer)/(1<<20)/took.Seconds(),
				mib(s.peak), s.samples, mib(hwm), mib(s.workers))
			if s.peak*1024 >= rssLimit {
				t.Errorf("gateway peak RSS %s, want < %s", mib(s.peak), mib(rssLimit/1024))
			}
			if hwm*1024 >= rssLimit {
				t.Errorf("gateway VmHWM %s, want < %s", mib(hwm), mib(rssLimit/1024))
			}
		})
	}
}
