//go:build linux

// lifecycle_test.go: the pool's process management against fake workers: timeouts and the
// slow log, recycling, pool modes, crash-loop backoff and reload.

package pyrunner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// logBuf collects a pool's log; safe for concurrent use.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// withLog gives opts a logger writing to the returned buffer.
func withLog(opts *Options) *logBuf {
	lb := new(logBuf)
	opts.Logger = hclog.New(&hclog.LoggerOptions{Output: lb, Level: hclog.Debug})
	return lb
}

func pathRequest(path string) *Request {
	r := new(Request)
	r.Reset()
	r.EnvString("REQUEST_METHOD", "GET")
	r.EnvString("PATH_INFO", path)
	r.EnvString("REQUEST_URI", path)
	return r
}

// waitFor polls cond for up to timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTimeoutLogsStackAndReplacesWorker(t *testing.T) {
	opts := fakeOptions(t, "sleep", 1)
	opts.SlowTimeout = 100 * time.Millisecond
	opts.Timeout = 400 * time.Millisecond
	lb := withLog(&opts)
	p := startPool(t, opts)
	before := p.PIDs()

	// Slow but in time: the stack is logged once, the request completes.
	var rec recorder
	if err := p.Do(context.Background(), pathRequest("/250ms"), &rec); err != nil || rec.body.String() != "slept 250ms" {
		t.Fatalf("slow request: %v %q", err, rec.body.String())
	}
	log := lb.String()
	if n := strings.Count(log, "slow request"); n != 1 || !strings.Contains(log, "fake_sleep") || !strings.Contains(log, "uri=/250ms") {
		t.Fatalf("want one slow-request line with the stack and the uri; log:\n%s", log)
	}
	if got := p.PIDs(); !slices.Equal(got, before) {
		t.Fatalf("the slow request's worker was replaced: %v → %v", before, got)
	}

	// Past the timeout: ErrTimeout, the stack in the log, the worker killed and replaced.
	start := time.Now()
	err := p.Do(context.Background(), pathRequest("/5s"), &recorder{})
	took := time.Since(start)
	var xe *ExchangeError
	if !errors.As(err, &xe) || !errors.Is(err, ErrTimeout) || xe.Started {
		t.Fatalf("err = %v, want an ExchangeError wrapping ErrTimeout", err)
	}
	if took < 400*time.Millisecond || took > 2*time.Second {
		t.Errorf("timed out after %v, want about 400ms (+ the stack read)", took)
	}
	log = lb.String()
	if !strings.Contains(log, "request timed out") || strings.Count(log, "fake_sleep") != 3 {
		t.Fatalf("want the timeout line with the stack (and the slow line before it); log:\n%s", log)
	}
	waitFor(t, 5*time.Second, "a replacement worker", func() bool {
		got := p.PIDs()
		return len(got) == 1 && got[0] != before[0] && p.Snapshot(false).Idle == 1
	})
	if strings.Contains(lb.String(), "backing off") {
		t.Errorf("a worker killed for a timeout counted as a crash:\n%s", lb.String())
	}
	if err := p.Do(context.Background(), pathRequest("/0s"), &rec); err != nil {
		t.Fatalf("after the timeout: %v", err)
	}
}

func TestStartTimeoutLogsStack(t *testing.T) {
	opts := fakeOptions(t, "hang", 1)
	opts.StartTimeout = 300 * time.Millisecond
	lb := withLog(&opts)
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--start-timeout") {
		t.Fatalf("err = %v, want the start timeout", err)
	}
	if !strings.Contains(lb.String(), "fake_hang") {
		t.Errorf("the hung worker's stack is not in the log:\n%s", lb.String())
	}
}

func TestMaxRequestsRecycles(t *testing.T) {
	opts := fakeOptions(t, "echo", 1)
	opts.MaxRequests = 3
	lb := withLog(&opts)
	p := startPool(t, opts)
	seen := map[int]int{} // pid → requests served
	for range 9 {
		var rec recorder
		if err := p.Do(context.Background(), simpleRequest(), &rec); err != nil {
			t.Fatal(err)
		}
		_, pid, _ := strings.Cut(rec.body.String(), " pid ")
		seen[atoi(pid)]++
	}
	if len(seen) != 3 {
		t.Fatalf("9 requests with --max-requests 3 ran on %d workers (%v), want 3", len(seen), seen)
	}
	for pid, n := range seen {
		if n != 3 {
			t.Errorf("worker %d served %d requests, want 3", pid, n)
		}
	}
	if strings.Contains(lb.String(), "backing off") {
		t.Errorf("recycled workers counted as crashes:\n%s", lb.String())
	}
}

func TestMaxRequestsJitter(t *testing.T) {
	opts := fakeOptions(t, "echo", 1)
	opts.MaxRequests, opts.MaxRequestsJitter = 100, 50
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.source.Close()
	limits := map[int]bool{}
	p.mu.Lock()
	for range 200 {
		pr := p.newProcessLocked(0)
		if pr.maxRequests < 100 || pr.maxRequests > 150 {
			t.Fatalf("max requests %d outside 100..150", pr.maxRequests)
		}
		limits[pr.maxRequests] = true
	}
	p.mu.Unlock()
	if len(limits) < 10 {
		t.Errorf("200 workers got only %d distinct limits: no jitter", len(limits))
	}
}

// gateWriter is a ResponseWriter that blocks the owner of the worker serving its request in
// WriteHeader until the gate closes: it holds that worker busy.
type gateWriter struct {
	recorder
	gate <-chan struct{}
}

func (g *gateWriter) WriteHeader(status []byte, h Header) error {
	<-g.gate
	return g.recorder.WriteHeader(status, h)
}

// hold makes n workers busy with requests that end when the returned func is called.
func hold(t *testing.T, p *Pool, n int) func() {
	t.Helper()
	gate := make(chan struct{})
	var wg sync.WaitGroup
	busy := p.Snapshot(false).Active
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Do(context.Background(), simpleRequest(), &gateWriter{gate: gate})
		}()
	}
	waitFor(t, 5*time.Second, "held workers busy", func() bool { return p.Snapshot(false).Active >= busy+n })
	return func() {
		close(gate)
		wg.Wait()
	}
}

func TestDynamicScales(t *testing.T) {
	opts := fakeOptions(t, "echo", 4)
	opts.Mode = Dynamic
	opts.MinSpare, opts.MaxSpare, opts.StartWorkers = 1, 2, 1
	p := startPool(t, opts)
	if s := p.Snapshot(false); s.Processes != 1 {
		t.Fatalf("dynamic started %d workers, want --pm-start 1", s.Processes)
	}
	// Busy workers leave fewer than min spare idle: more start, up to the maximum.
	release := hold(t, p, 3)
	waitFor(t, 5*time.Second, "a spare beside 3 busy workers", func() bool { s := p.Snapshot(false); return s.Processes == 4 && s.Idle == 1 })
	release2 := hold(t, p, 1)
	time.Sleep(300 * time.Millisecond)
	if s := p.Snapshot(false); s.Processes+s.Starting > 4 {
		t.Fatalf("more workers than --workers 4: %+v", s)
	}
	release()
	release2()
	// 4 idle, max spare 2: trimmed, one a second.
	waitFor(t, 5*time.Second, "idle workers trimmed to max spare", func() bool { s := p.Snapshot(false); return s.Processes == 2 && s.Idle == 2 })
}

func TestOndemandScales(t *testing.T) {
	opts := fakeOptions(t, "sleep", 3)
	opts.Mode = Ondemand
	opts.IdleTimeout = 300 * time.Millisecond
	p := startPool(t, opts)
	// The first worker (started to check the app) idles out.
	waitFor(t, 5*time.Second, "no worker when idle", func() bool { s := p.Snapshot(false); return s.Processes == 0 && s.Starting == 0 })
	// A burst of 5 slow requests starts workers, up to 3.
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- p.Do(context.Background(), pathRequest("/300ms"), &recorder{})
		}()
	}
	waitFor(t, 5*time.Second, "3 workers under load", func() bool { return p.Snapshot(false).Processes == 3 })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("request: %v", err)
		}
	}
	if s := p.Snapshot(false); s.Processes+s.Starting > 3 {
		t.Errorf("more than --workers 3: %+v", s)
	}
	waitFor(t, 5*time.Second, "idle workers exit after the idle timeout", func() bool { s := p.Snapshot(false); return s.Processes == 0 && s.Starting == 0 })
}

func TestCrashLoopBackoffLogsPerStep(t *testing.T) {
	opts := fakeOptions(t, "die", 4)
	lb := withLog(&opts)
	p := startPool(t, opts)
	deadline := time.Now().Add(1500 * time.Millisecond)
	deaths := 0
	for time.Now().Before(deadline) {
		err := p.Do(context.Background(), simpleRequest(), &recorder{})
		if errors.Is(err, ErrWorkerDied) {
			deaths++
		}
	}
	steps := strings.Count(lb.String(), "backing off")
	if deaths < 8 || steps == 0 || steps > deaths/2 {
		t.Fatalf("%d deaths logged as %d backoff steps; want many deaths, few lines:\n%s", deaths, steps, lb.String())
	}
	for _, d := range []string{"retry_in=100ms", "retry_in=200ms", "retry_in=400ms"} {
		if !strings.Contains(lb.String(), d) {
			t.Errorf("no backoff step %s in the log:\n%s", d, lb.String())
		}
	}
}

// modeFile makes the fake workers read their mode from a file the test can change.
func modeFile(t *testing.T, mode string) (Options, func(string)) {
	path := filepath.Join(t.TempDir(), "mode")
	set := func(m string) {
		if err := os.WriteFile(path, []byte(m), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set(mode)
	return fakeOptions(t, "@"+path, 2), set
}

func TestReload(t *testing.T) {
	opts, setMode := modeFile(t, "echo")
	lb := withLog(&opts)
	p := startPool(t, opts)
	old := p.PIDs()

	// A reload whose new code does not load keeps the old workers.
	setMode("fatal")
	var le *LoadError
	if err := p.Reload(context.Background()); !errors.As(err, &le) {
		t.Fatalf("reload with a broken app: %v, want a LoadError", err)
	}
	if !strings.Contains(lb.String(), "reload failed") {
		t.Errorf("the failed reload is not logged:\n%s", lb.String())
	}
	if got := p.PIDs(); !sameSet(got, old) {
		t.Fatalf("workers after a failed reload: %v, want the old %v", got, old)
	}

	// A good reload under load: no request fails, then only new workers serve.
	setMode("stream")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var rec recorder
				if err := p.Do(context.Background(), simpleRequest(), &rec); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := p.Reload(context.Background()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	waitFor(t, 5*time.Second, "old workers gone", func() bool {
		got := p.PIDs()
		for _, pid := range got {
			if slices.Contains(old, pid) {
				return false
			}
		}
		return len(got) == 2
	})
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed during the reload, first: %v", len(failures), failures[0])
	}
	var rec recorder
	if err := p.Do(context.Background(), simpleRequest(), &rec); err != nil || rec.body.String() != "one,two,three" {
		t.Fatalf("after the reload: %v %q, want the new code's answer", err, rec.body.String())
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func sameSet(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestWorkerStateStrings(t *testing.T) {
	want := []string{"Starting", "Idle", "Busy", "Draining", "Exited"}
	for s := stateStarting; s < numStates; s++ {
		if s.String() != want[s] {
			t.Errorf("state %d is %q, want %q", s, s, want[s])
		}
	}
	for _, m := range []Mode{Static, Dynamic, Ondemand} {
		if got, err := ParseMode(m.String()); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMode("adaptive"); err == nil {
		t.Error("ParseMode accepted adaptive")
	}
}

func TestThreadsAreSlots(t *testing.T) {
	opts := fakeOptions(t, "sleep", 2)
	opts.Threads = 3
	opts.MaxRequests = 6
	p := startPool(t, opts)
	if s := p.Snapshot(false); s.Processes != 2 || s.Idle != 6 {
		t.Fatalf("2 processes of 3 threads: %+v, want 2 workers and 6 idle threads", s)
	}
	// 6 requests of 300ms run at once: 3 in each process.
	start := time.Now()
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rec recorder
			if err := p.Do(context.Background(), pathRequest("/300ms"), &rec); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("6 requests of 300ms on 2×3 threads took %v, want about 300ms", took)
	}
	// Max requests count per process (3 each so far): 12 more requests retire both.
	before := p.PIDs()
	for range 12 {
		if err := p.Do(context.Background(), pathRequest("/0s"), &recorder{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the recycled processes replaced", func() bool {
		got := p.PIDs()
		return len(got) == 2 && !slices.Contains(got, before[0]) && !slices.Contains(got, before[1]) && p.Snapshot(false).Idle == 6
	})
}

func TestMaxRSSRecycles(t *testing.T) {
	opts := fakeOptions(t, "echo", 1)
	opts.MaxRSS = 1 // every process is over it
	lb := withLog(&opts)
	p := startPool(t, opts)
	first := p.PIDs()
	waitFor(t, 5*time.Second, "the worker over --max-rss replaced", func() bool {
		got := p.PIDs()
		return len(got) == 1 && got[0] != first[0]
	})
	if !strings.Contains(lb.String(), "over --max-rss") {
		t.Errorf("no --max-rss line in the log:\n%s", lb.String())
	}
	if strings.Contains(lb.String(), "backing off") {
		t.Errorf("a worker recycled for its memory counted as a crash:\n%s", lb.String())
	}
}

func TestExitCauseNamesOOM(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status syscall.WaitStatus
		ours   bool // the pool sent SIGKILL
		want   string
	}{
		{"SIGKILL from outside", syscall.WaitStatus(syscall.SIGKILL), false, "signal: killed (killed from outside the gateway: out of memory?)"},
		{"SIGKILL of the pool's", syscall.WaitStatus(syscall.SIGKILL), true, "signal: killed (by the gateway)"},
		{"exit 3", syscall.WaitStatus(3 << 8), false, "exit status 3"},
		{"exit 1 after the pool's SIGKILL", syscall.WaitStatus(1 << 8), true, "exit status 1"},
	} {
		if got := exitCause(waitStatus(tc.status), tc.ours); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A worker that dies of its own crash closes its channel before it exits: the pool must wait
// for the exit status rather than kill it and then blame its SIGKILL on the OOM killer.
func TestCrashIsNotCalledOOM(t *testing.T) {
	opts := fakeOptions(t, "crash", 1)
	lb := withLog(&opts)
	p := startPool(t, opts)
	if err := p.Do(context.Background(), simpleRequest(), &recorder{}); !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("Do = %v, want ErrWorkerDied", err)
	}
	waitFor(t, 10*time.Second, "the crash is logged", func() bool { return strings.Contains(lb.String(), "exited on its own") })
	log := lb.String()
	if strings.Contains(log, "out of memory") || !strings.Contains(log, "exited on its own (exit status 1)") {
		t.Fatalf("the crash (exit status 1) is not logged as such:\n%s", log)
	}
}
