//go:build linux

package pyrunner

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// sleepRequest is a request for the fake "sleep" worker, with the status page's RequestInfo.
func sleepRequest(d time.Duration) *Request {
	r := new(Request)
	r.Reset()
	uri := fmt.Sprintf("/%v?q=1", d)
	r.EnvString("REQUEST_METHOD", "POST")
	r.EnvString("PATH_INFO", "/"+d.String())
	r.Info = RequestInfo{Method: []byte("POST"), URI: []byte(uri), ContentLength: []byte("42")}
	return r
}

// TestSnapshot checks each number of the status page against a pool whose state is known: a
// running request, one waiting with the pool at its largest, a slow one, and the rows of
// ?full.
func TestSnapshot(t *testing.T) {
	opts := fakeOptions(t, "sleep", 2)
	opts.TrackRequests = true
	opts.SlowTimeout = 100 * time.Millisecond
	opts.QueueSize = 7
	p := startPool(t, opts)

	s := p.Snapshot(true)
	if s.Mode != Static || s.Idle != 2 || s.Active != 0 || s.QueueSize != 7 || len(s.Workers) != 2 {
		t.Fatalf("at rest: %+v", s)
	}
	for _, w := range s.Workers {
		if w.State != "Idle" || w.PID == 0 || w.RSS <= 0 || w.Started.IsZero() || w.Method != "" {
			t.Errorf("idle row: %+v", w)
		}
	}

	// Two long requests take both workers; a third waits with the pool at its largest.
	var wg sync.WaitGroup
	do := func(d time.Duration) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Do(context.Background(), sleepRequest(d), &recorder{}); err != nil {
				t.Error(err)
			}
		}()
	}
	do(400 * time.Millisecond)
	do(400 * time.Millisecond)
	waitFor(t, 5*time.Second, "two requests running", func() bool { return p.Snapshot(false).Active == 2 })
	do(10 * time.Millisecond)
	waitFor(t, 5*time.Second, "a request waiting", func() bool { return p.Snapshot(false).Waiting == 1 })
	waitFor(t, 5*time.Second, "both requests past SlowTimeout", func() bool { return p.Snapshot(false).SlowRequests == 2 })
	s = p.Snapshot(true)
	if s.Idle != 0 || s.Active != 2 || s.MaxActive != 2 || s.Waiting != 1 || s.MaxWaiting != 1 || s.MaxChildrenReached != 1 {
		t.Errorf("busy: %+v", s)
	}
	for _, w := range s.Workers {
		if w.State != "Running" || w.Method != "POST" || w.URI != "/400ms?q=1" || w.ContentLength != 42 || w.Duration < 100*time.Millisecond {
			t.Errorf("running row: %+v", w)
		}
	}
	wg.Wait()

	s = p.Snapshot(true)
	if s.Active != 0 || s.Idle != 2 || s.Waiting != 0 || s.MaxWaiting != 1 || s.MaxActive != 2 || s.SlowRequests != 2 {
		t.Errorf("after: %+v", s)
	}
	var served uint64
	for _, w := range s.Workers {
		served += w.Requests
		if w.State != "Idle" || w.Method != "" || w.URI != "" || w.Duration < 10*time.Millisecond {
			t.Errorf("idle row after requests: %+v", w)
		}
	}
	if served != 3 {
		t.Errorf("rows count %d requests, want 3", served)
	}
	if s.Served != 3 {
		t.Errorf("Served %d, want 3", s.Served)
	}
	if s := p.Snapshot(false); s.Workers != nil {
		t.Errorf("rows without full: %+v", s.Workers)
	}
}

// TestSnapshotRace takes snapshots while requests run on Request values that are reset and
// reused at once, as the gateway reuses them: with -race, it shows that a snapshot reads a
// request's Info only while the request holds its worker.
func TestSnapshotRace(t *testing.T) {
	opts := fakeOptions(t, "echo", 2)
	opts.TrackRequests = true
	p := startPool(t, opts)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := new(Request)
			uri := []byte("/a")
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				req.Reset()
				uri = append(uri[:0], fmt.Sprintf("/%d/%d", i, n)...) // the same bytes, rewritten
				req.Info = RequestInfo{Method: []byte("GET"), URI: uri}
				if err := p.Do(context.Background(), req, &recorder{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, w := range p.Snapshot(true).Workers {
			if w.State == "Running" && w.URI != "" && w.URI[0] != '/' {
				t.Errorf("row: %+v", w)
			}
		}
	}
	close(stop)
	wg.Wait()
}

// BenchmarkDo runs one small request at a time through the pool to a fake worker that
// answers at once: the pool's request path (hand-out, exchange, release) plus the channel's
// round trip, without and with the status page's tracking.
func BenchmarkDo(b *testing.B) {
	for _, bc := range []struct {
		name  string
		track bool
	}{{"plain", false}, {"track", true}} {
		b.Run(bc.name, func(b *testing.B) {
			opts := fakeOptions(&testing.T{}, "echo", 1)
			opts.TrackRequests = bc.track
			p, err := New(opts)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			req := simpleRequest()
			req.Info = RequestInfo{Method: []byte("GET"), URI: []byte("/")}
			rec := &recorder{}
			b.ReportAllocs()
			for b.Loop() {
				rec.body.Reset()
				if err := p.Do(context.Background(), req, rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandout hands an idle worker out and takes it back, without a process: the pool's
// own bookkeeping per request (the lock, the idle stack, the state counts), and with "track"
// the status page's begin and end around it.
