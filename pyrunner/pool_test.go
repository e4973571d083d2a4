//go:build linux

package pyrunner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func startPool(t *testing.T, opts Options) *Pool {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return p
}

func simpleRequest() *Request {
	r := new(Request)
	r.Reset()
	r.EnvString("REQUEST_METHOD", "GET")
	r.EnvString("PATH_INFO", "/")
	return r
}

func TestDoResponses(t *testing.T) {
	cases := []struct {
		mode        string
		wantStatus  string
		wantBody    string
		wantFlushes int
		wantErr     error
	}{
		{mode: "echo", wantStatus: "200 OK", wantBody: "environ ", wantFlushes: 0},
		{mode: "stream", wantStatus: "200 OK", wantBody: "one,two,three", wantFlushes: 2},
		{mode: "badheader", wantErr: ErrBadHeader},
		{mode: "apperror", wantStatus: "200 OK", wantBody: "partial", wantFlushes: 1, wantErr: ErrAppFailed},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			p := startPool(t, fakeOptions(t, tc.mode, 1))
			for i := 0; i < 3; i++ { // the worker stays usable
				var rec recorder
				err := p.Do(context.Background(), simpleRequest(), &rec)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("request %d: err = %v, want %v", i, err, tc.wantErr)
				}
				if rec.status != tc.wantStatus || !strings.HasPrefix(rec.body.String(), tc.wantBody) {
					t.Fatalf("request %d: got %q %q, want %q %q", i, rec.status, rec.body.String(), tc.wantStatus, tc.wantBody)
				}
				if rec.flushes != tc.wantFlushes {
					t.Errorf("flushes = %d, want %d", rec.flushes, tc.wantFlushes)
				}
				if errors.Is(tc.wantErr, ErrBadHeader) && len(rec.headers) > 0 {
					t.Errorf("an invalid header reached the writer: %q", rec.headers)
				}
			}
			if got := p.Snapshot(false).Processes; got != 1 {
				t.Errorf("workers = %d after the requests, want 1 (the worker is reused)", got)
			}
		})
	}
}

func TestBodyStreamsOnRead(t *testing.T) {
	p := startPool(t, fakeOptions(t, "readbody", 1))
	body := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // 4.8 MB
	sum := sha256.Sum256(body)
	want := fmt.Sprintf("%d %s", len(body), hex.EncodeToString(sum[:]))
	for _, inline := range []int{0, 1000, 64 << 10} {
		r := simpleRequest()
		copy(r.InlineBody(inline), body)
		r.Body = bytes.NewReader(body[min(inline, 64<<10):])
		var rec recorder
		if err := p.Do(context.Background(), r, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.body.String() != want {
			t.Errorf("inline %d: app saw %q, want %q", inline, rec.body.String(), want)
		}
	}
}

func TestWorkerDeathIs502AndReplaced(t *testing.T) {
	p := startPool(t, fakeOptions(t, "die", 2))
	var rec recorder
	err := p.Do(context.Background(), simpleRequest(), &rec)
	var xe *ExchangeError
	if !errors.As(err, &xe) || !errors.Is(err, ErrWorkerDied) || xe.Started {
		t.Fatalf("err = %#v, want an ExchangeError wrapping ErrWorkerDied, not started", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := p.Snapshot(false)
		if s.Processes == 2 && s.Idle == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool not back to 2 idle workers: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClientGoneDrainsWorker(t *testing.T) {
	p := startPool(t, fakeOptions(t, "stream", 1))
	rec := recorder{failAt: 5}
	err := p.Do(context.Background(), simpleRequest(), &rec)
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("err = %v, want the writer's error", err)
	}
	var again recorder
	if err := p.Do(context.Background(), simpleRequest(), &again); err != nil || again.body.String() != "one,two,three" {
		t.Fatalf("the drained worker did not serve the next request cleanly: %v %q", err, again.body.String())
	}
}

func TestQueueLimits(t *testing.T) {
	opts := fakeOptions(t, "echo", 1)
	opts.QueueSize = 1
	opts.QueueTimeout = 200 * time.Millisecond
	p := startPool(t, opts)

	// Hold the only worker.
	release := hold(t, p, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	var waitErr error
	var waited time.Duration
	go func() {
		defer wg.Done()
		start := time.Now()
		waitErr = p.Do(context.Background(), simpleRequest(), &recorder{})
		waited = time.Since(start)
	}()
	// The queue (size 1) fills with that request; the next is refused at once.
	deadline := time.Now().Add(2 * time.Second)
	for p.Snapshot(false).Waiting != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.Do(context.Background(), simpleRequest(), &recorder{}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("over the queue: err = %v, want ErrQueueFull", err)
	}
	wg.Wait()
	if !errors.Is(waitErr, ErrQueueTimeout) || waited < 150*time.Millisecond || waited > 2*time.Second {
		t.Errorf("queued request: err = %v after %v, want ErrQueueTimeout after about 200ms", waitErr, waited)
	}
	release()
	if err := p.Do(context.Background(), simpleRequest(), &recorder{}); err != nil {
		t.Errorf("after release: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	t.Run("load error", func(t *testing.T) {
		p, err := New(fakeOptions(t, "fatal", 2))
		if err != nil {
			t.Fatal(err)
		}
		err = p.Start(context.Background())
		var le *LoadError
		if !errors.As(err, &le) || !strings.Contains(le.Message, "ModuleNotFoundError") {
			t.Fatalf("err = %v, want a LoadError with the runner's message", err)
		}
	})
	t.Run("no python", func(t *testing.T) {
		opts := fakeOptions(t, "echo", 1)
		opts.Python = "/nonexistent/python3"
		p, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(context.Background()); !errors.Is(err, ErrNoPython) || !strings.Contains(err.Error(), "/nonexistent/python3") {
			t.Fatalf("err = %v, want ErrNoPython naming the path", err)
		}
	})
}
