//go:build linux

// cancel_test.go: a request can be stopped at every stage (issue 17): withdrawn from the
// queue or a worker's inbox, skipped by the worker when it was written ahead, stopped while it
// runs, interrupted at --soft-timeout, and its worker killed when the app does not stop.

package pyrunner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// cancelOnWrite is a ResponseWriter that cancels its request's context at its first body
// write: the client goes away after the first chunk.
type cancelOnWrite struct {
	recorder
	cancel context.CancelFunc
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	c.cancel()
	return c.recorder.Write(p)
}

// fakeLogLines returns what the fake workers logged (PYRUNNER_FAKE_LOG).
func fakeLogLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), "stopped ", "stopped:"))
}

func withFakeLog(t *testing.T, opts *Options) string {
	path := filepath.Join(t.TempDir(), "requests.log")
	opts.Env = append(opts.Env, "PYRUNNER_FAKE_LOG="+path)
	return path
}

// pidOf runs an echo-like request and returns the pid of the worker that answered.
func pidOf(t *testing.T, p *Pool, path string) int {
	t.Helper()
	req := pathRequest(path)
	if err := p.Do(context.Background(), req, &recorder{}); err != nil {
		t.Fatalf("Do %s: %v", path, err)
	}
	return req.WorkerPID
}

func TestCancelStopsAStreamAndKeepsTheWorker(t *testing.T) {
	opts := fakeOptions(t, "drip", 1)
	logPath := withFakeLog(t, &opts)
	p := startPool(t, opts)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rw := &cancelOnWrite{cancel: cancel}
	req := pathRequest("/5000") // 10 s of chunks if nothing stops it
	err := p.Do(ctx, req, rw)
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("Do = %v, want ErrCanceled", err)
	}
	first := req.WorkerPID
	// The worker stops the stream (the fake logs it as it sends ABORTED) and serves again:
	// the caller's next request on the same Request (the gateway reuses them) is answered
	// whole, while the worker may still be reading the end of the stopped one.
	req.Reset()
	req.EnvString("REQUEST_METHOD", "GET")
	req.EnvString("PATH_INFO", "/1")
	var next recorder
	if err := p.Do(context.Background(), req, &next); err != nil || next.body.String() != "start\nchunk 0\n" {
		t.Fatalf("the next request on the reused Request: %v %q", err, next.body.String())
	}
	if req.WorkerPID != first {
		t.Errorf("next request served by pid %d, want the same worker %d", req.WorkerPID, first)
	}
	if lines := fakeLogLines(t, logPath); len(lines) != 3 || lines[1] != "stopped:/5000" {
		t.Errorf("fake worker log = %q, want the stream started, stopped, then the next request", lines)
	}
}

func TestSoftTimeoutInterruptsAndKeepsTheWorker(t *testing.T) {
	opts := fakeOptions(t, "sleep", 1)
	opts.SoftTimeout = 100 * time.Millisecond
	logPath := withFakeLog(t, &opts)
	logs := withLog(&opts)
	p := startPool(t, opts)

	req := pathRequest("/30s")
	err := p.Do(context.Background(), req, &recorder{})
	var xe *ExchangeError
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &xe) || xe.Started {
		t.Fatalf("Do = %v, want an unstarted ExchangeError wrapping ErrTimeout", err)
	}
	first := req.WorkerPID
	if got := pidOf(t, p, "/0s"); got != first {
		t.Errorf("after the soft timeout, pid %d answered, want the same worker %d", got, first)
	}
	if lines := fakeLogLines(t, logPath); len(lines) < 2 || lines[1] != "stopped:/30s" {
		t.Errorf("fake worker log = %q, want the sleep stopped", lines)
	}
	if !strings.Contains(logs.String(), "soft-timeout") {
		t.Errorf("no soft timeout in the log:\n%s", logs)
	}
	if s := p.Snapshot(false); s.SoftTimeouts != 1 {
		t.Errorf("SoftTimeouts = %d, want 1", s.SoftTimeouts)
	}
}

func TestAppThatIgnoresTheInterruptIsKilled(t *testing.T) {
	opts := fakeOptions(t, "deaf", 1)
	opts.SoftTimeout = 50 * time.Millisecond
	opts.CancelGrace = 200 * time.Millisecond
	logs := withLog(&opts)
	p := startPool(t, opts)

	req := pathRequest("/30s")
	if err := p.Do(context.Background(), req, &recorder{}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do = %v, want ErrTimeout", err)
	}
	first := req.WorkerPID
	waitFor(t, 10*time.Second, "the deaf worker replaced", func() bool {
		pids := p.PIDs()
		return len(pids) == 1 && pids[0] != first
	})
	if !strings.Contains(logs.String(), "did not stop when cancelled") || !strings.Contains(logs.String(), "fake_deaf") {
		t.Errorf("the kill and the stack are not in the log:\n%s", logs)
	}
}

// holdWith starts a request on the only worker of p and returns once the worker runs it.
func holdWith(t *testing.T, p *Pool, path string) (wait func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- p.Do(context.Background(), pathRequest(path), &recorder{}) }()
	waitFor(t, 5*time.Second, "the worker busy", func() bool { return p.Snapshot(false).Active == 1 })
	return func() error { return <-errc }
}

// makeYoung makes the requests running count as young ones, behind which another may be
// sent ahead, however long they have run.
func makeYoung(p *Pool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.aheadAvg = time.Second
	for _, w := range p.aheadable {
		w.aheadSince = time.Now()
	}
}

// inboxLen is how many requests the worker holds (running and sent ahead).
func inboxLen(p *Pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for w := range p.workers {
		n += w.queued
	}
	return n
}

func TestSentAheadAndWithdrawnNeverRuns(t *testing.T) {
	for _, cause := range []string{"cancelled", "queue timeout"} {
		t.Run(cause, func(t *testing.T) {
			opts := fakeOptions(t, "sleep", 1)
			if cause == "queue timeout" {
				opts.QueueTimeout = 100 * time.Millisecond
			}
			logPath := withFakeLog(t, &opts)
			p := startPool(t, opts)
			wait := holdWith(t, p, "/300ms")
			makeYoung(p) // the request running counts as young: the next is sent ahead
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- p.Do(ctx, pathRequest("/ahead"), &recorder{}) }()
			waitFor(t, 5*time.Second, "the request sent ahead", func() bool { return inboxLen(p) == 2 })
			if cause == "cancelled" {
				cancel()
			}
			err := <-errc
			want := ErrCanceled
			if cause == "queue timeout" {
				want = ErrQueueTimeout
			}
			if !errors.Is(err, want) {
				t.Fatalf("the request sent ahead: %v, want %v", err, want)
			}
			if err := wait(); err != nil {
				t.Fatalf("the request ahead of it: %v", err)
			}
			pidOf(t, p, "/0s") // the worker is in step: the next request is answered
			for _, line := range fakeLogLines(t, logPath) {
				if line == "/ahead" {
					t.Errorf("the withdrawn request ran: %q", fakeLogLines(t, logPath))
				}
			}
		})
	}
}

func TestMaxRequestsAppliesWithSendAhead(t *testing.T) {
	opts := fakeOptions(t, "echo", 2)
	opts.MaxRequests = 20
	p := startPool(t, opts)
	p.mu.Lock()
	p.aheadAvg = time.Second
	p.mu.Unlock()

	var mu sync.Mutex
	perPID := map[int]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 40 {
				req := simpleRequest()
				if err := p.Do(context.Background(), req, &recorder{}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				perPID[req.WorkerPID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for pid, n := range perPID {
		if n > 20 {
			t.Errorf("pid %d served %d requests, over --max-requests 20 (all: %v)", pid, n, perPID)
		}
	}
	if len(perPID) < 12 {
		t.Errorf("240 requests went to %d workers, want at least 12 with --max-requests 20: %v", len(perPID), perPID)
	}
}

// stalledBody gives some bytes, then waits for more until its read deadline passes, as an
// upload that stalls does.
type stalledBody struct {
	first    []byte
	mu       sync.Mutex
	deadline time.Time
	changed  chan struct{}
}

func newStalledBody(n int) *stalledBody {
	return &stalledBody{first: make([]byte, n), changed: make(chan struct{}, 1)}
}

func (b *stalledBody) SetReadDeadline(t time.Time) error {
	b.mu.Lock()
	b.deadline = t
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return nil
}

func (b *stalledBody) Read(p []byte) (int, error) {
	if len(b.first) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		return n, nil
	}
	for {
		b.mu.Lock()
		d := b.deadline
		b.mu.Unlock()
		var timeout <-chan time.Time
		if !d.IsZero() {
			timer := time.NewTimer(time.Until(d))
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		case <-b.changed:
		}
	}
}

func TestStalledUploadEndsAtTheTimeout(t *testing.T) {
	for _, soft := range []bool{false, true} {
		name := "timeout"
		if soft {
			name = "soft timeout"
		}
		t.Run(name, func(t *testing.T) {
			opts := fakeOptions(t, "readbody", 1)
			if soft {
				opts.SoftTimeout = 200 * time.Millisecond
				opts.CancelGrace = 10 * time.Second
			} else {
				opts.Timeout = 200 * time.Millisecond
			}
			p := startPool(t, opts)
			req := simpleRequest()
			req.EnvString("CONTENT_LENGTH", "1000000")
			req.Body = newStalledBody(100 << 10)
			err := p.Do(context.Background(), req, &recorder{})
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("Do = %v, want ErrTimeout", err)
			}
			first := req.WorkerPID
			// The app's read of the body fails (BODY with EOF|ERROR) and it answers: the app was
			// not at fault, the worker serves on.
			if got := pidOf(t, p, "/"); got != first {
				t.Errorf("next request served by pid %d, want the same worker %d", got, first)
			}
		})
	}
}

// stuckWriter is a ResponseWriter whose body writes block until its write deadline, as a
// web server that stopped reading.
type stuckWriter struct {
	recorder
	mu       sync.Mutex
	deadline time.Time
}

func (s *stuckWriter) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	s.mu.Unlock()
	return nil
}

func (s *stuckWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	d := s.deadline
	s.mu.Unlock()
	if d.IsZero() {
		select {} // a test failure shows as the test's timeout
	}
	time.Sleep(time.Until(d))
	return 0, os.ErrDeadlineExceeded
}

func TestStuckWebServerEndsAtTheTimeout(t *testing.T) {
	opts := fakeOptions(t, "drip", 1)
	opts.Timeout = 300 * time.Millisecond
	opts.CancelGrace = 5 * time.Second
	p := startPool(t, opts)
	req := pathRequest("/5000")
	err := p.Do(context.Background(), req, &stuckWriter{})
	var xe *ExchangeError
	if !errors.As(err, &xe) || !xe.Started || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Do = %v, want a started response cut by the write deadline", err)
	}
	// The worker was told to stop the stream, and serves the next request.
	if got := pidOf(t, p, "/1"); got != req.WorkerPID {
		t.Errorf("next request served by pid %d, want the same worker %d", got, req.WorkerPID)
	}
}

// recordingApp is a WSGI app for the real runner that appends every PATH_INFO it starts to
// $REC_LOG, sleeps on /slow, and answers the length of the body it read.
const recordingApp = `import os, time
def app(environ, start_response):
    with open(os.environ["REC_LOG"], "a") as f:
        f.write(environ["PATH_INFO"] + "\n")
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.3)
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % len(body)]
`

func TestRealRunnerSentAheadPOSTAbortedNeverRuns(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rec.py"), []byte(recordingApp), 0o644); err != nil {
		t.Fatal(err)
	}
	started := filepath.Join(dir, "started.log")
	p := startPool(t, Options{Python: realPython(t), App: "rec:app", Chdir: dir, Workers: 1,
		StartTimeout: 30 * time.Second, Env: append(os.Environ(), "REC_LOG="+started)})

	wait := holdWith(t, p, "/slow")
	makeYoung(p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	post := pathRequest("/post")
	post.EnvString("CONTENT_LENGTH", "5")
	copy(post.InlineBody(5), "hello")
	errc := make(chan error, 1)
	go func() { errc <- p.Do(ctx, post, &recorder{}) }()
	waitFor(t, 5*time.Second, "the POST sent ahead", func() bool { return inboxLen(p) == 2 })
	cancel() // the web server aborts it while it waits behind /slow, written into the pipe
	if err := <-errc; !errors.Is(err, ErrCanceled) {
		t.Fatalf("the aborted POST: %v, want ErrCanceled", err)
	}
	if err := wait(); err != nil {
		t.Fatalf("/slow: %v", err)
	}
	pidOf(t, p, "/after")
	b, _ := os.ReadFile(started)
	if got := strings.Fields(string(b)); len(got) != 2 || got[0] != "/slow" || got[1] != "/after" {
		t.Errorf("the app started %q, want /slow and /after: the aborted POST must never reach it", got)
	}
}

// A Request is reused by its caller as soon as Do returns, while the worker may still be
// draining the request that was cancelled: a request sent ahead to that worker on the same
// Request must be served as itself (regression: the inbox kept the cancelled call's pointer,
// which the reused Request's call then matched).
func TestReusedRequestBehindItsCancelledSelf(t *testing.T) {
	for _, mode := range []string{"sleep", "deaf"} { // the app stops at once, or is killed
		t.Run(mode, func(t *testing.T) {
			opts := fakeOptions(t, mode, 1)
			opts.CancelGrace = 300 * time.Millisecond
			p := startPool(t, opts)

			req := pathRequest("/30s")
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- p.Do(ctx, req, &recorder{}) }()
			waitFor(t, 5*time.Second, "the worker busy", func() bool { return p.Snapshot(false).Active == 1 })
			cancel()
			if err := <-errc; !errors.Is(err, ErrCanceled) {
				t.Fatalf("Do = %v, want ErrCanceled", err)
			}
			// The next requests are sent ahead, behind the one the worker may still be on.
			for _, d := range []string{"0s", "1ms", "2ms"} {
				makeYoung(p)
				req.Reset()
				req.EnvString("REQUEST_METHOD", "GET")
				req.EnvString("PATH_INFO", "/"+d)
				var next recorder
				if err := p.Do(context.Background(), req, &next); err != nil || next.body.String() != "slept "+d {
					t.Fatalf("request /%s on the reused Request: %v %q", d, err, next.body.String())
				}
			}
		})
	}
}

// With --threads, each channel of a process has its own words on the cancel board: a request
// interrupted on any thread is stopped there, and the process serves on (regression: every
// channel was marked in the first channel's words).
func TestSoftTimeoutOnEveryThread(t *testing.T) {
	opts := fakeOptions(t, "sleep", 1)
	opts.Threads = 2
	opts.SoftTimeout = 100 * time.Millisecond
	opts.CancelGrace = 10 * time.Second
	p := startPool(t, opts)
	pid := p.PIDs()[0]

	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Do(context.Background(), pathRequest("/30s"), &recorder{}); !errors.Is(err, ErrTimeout) {
				t.Errorf("Do = %v, want ErrTimeout", err)
			}
		}()
	}
	wg.Wait()
	// Both threads stopped their request: both serve at once, in the same process.
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := pidOf(t, p, "/0s"); got != pid {
				t.Errorf("pid %d answered, want the same process %d", got, pid)
			}
		}()
	}
	wg.Wait()
}
