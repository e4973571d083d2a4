package pyrunner

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// doAsync runs req in a goroutine; the returned func waits for it.
func doAsync(p *Pool, req *Request) func() (*recorder, error) {
	rec := new(recorder)
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err = p.Do(context.Background(), req, rec)
	}()
	return func() (*recorder, error) {
		wg.Wait()
		return rec, err
	}
}

// setAheadAvg sets the moving average of request times that send-ahead goes by.
func setAheadAvg(p *Pool, d time.Duration) {
	p.mu.Lock()
	p.aheadAvg = d
	p.mu.Unlock()
}

// waitAhead waits until n requests are sent ahead (booked behind a busy worker).
func waitAhead(t *testing.T, p *Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		ahead := p.ahead
		p.mu.Unlock()
		if ahead >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d requests sent ahead, have %d: %+v", n, ahead, p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// waitBusy waits until n workers are busy.
func waitBusy(t *testing.T, p *Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Busy < n {
		if time.Now().After(deadline) {
			t.Fatalf("want %d busy workers: %+v", n, p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSendAhead: with the only worker busy on a young request, the next inline request is
// sent ahead (it does not wait in the queue) and is answered after it, by the same worker;
// behind a request older than four times the average or than aheadMaxAge, with a body to stream,
// before any request was timed, or with send-ahead off, it waits in the queue.
func TestSendAhead(t *testing.T) {
	cases := []struct {
		name      string
		off       bool
		avg       time.Duration // the moving average of request times
		settle    time.Duration // how long the first request runs before the second comes
		body      bool          // the second request streams a body
		wantQueue bool
	}{
		{name: "young request: sent ahead", avg: aheadMaxAge},
		{name: "older than aheadMaxAge: queued", avg: aheadMaxAge, settle: 3 * aheadMaxAge, wantQueue: true},
		{name: "older than four times the average: queued", avg: time.Millisecond, settle: 20 * time.Millisecond, wantQueue: true},
		{name: "no average yet: queued", wantQueue: true},
		{name: "body to stream: queued", avg: aheadMaxAge, body: true, wantQueue: true},
		{name: "turned off: queued", avg: aheadMaxAge, off: true, wantQueue: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := fakeOptions(t, "sleep", 1)
			opts.NoSendAhead = tc.off
			p := startPool(t, opts)
			setAheadAvg(p, tc.avg)
			first := doAsync(p, pathRequest("/300ms"))
			waitBusy(t, p, 1)
			time.Sleep(tc.settle)
			second := pathRequest("/0s")
			if tc.body {
				second.Body = strings.NewReader("")
			}
			secondDone := doAsync(p, second)
			time.Sleep(50 * time.Millisecond)
			if got := p.Stats().Waiting == 1; got != tc.wantQueue {
				t.Errorf("second request in the queue: %v, want %v (%+v)", got, tc.wantQueue, p.Stats())
			}
			r1, err1 := first()
			r2, err2 := secondDone()
			if err1 != nil || r1.body.String() != "slept 300ms" {
				t.Errorf("first: %v %q", err1, r1.body.String())
			}
			if err2 != nil || r2.body.String() != "slept 0s" {
				t.Errorf("second: %v %q", err2, r2.body.String())
			}
		})
	}
}

// TestSendAheadRetriedWhenWorkerDies: the worker dies in the request ahead; the requests sent
// ahead behind it never started, so they are served by the replacement, not answered 502.
func TestSendAheadRetriedWhenWorkerDies(t *testing.T) {
	p := startPool(t, fakeOptions(t, "sleep", 1))
	setAheadAvg(p, aheadMaxAge)
	first := doAsync(p, pathRequest("/die:200ms"))
	waitBusy(t, p, 1)
	var behind []func() (*recorder, error)
	for i := range DefaultSendAheadDepth {
		behind = append(behind, doAsync(p, pathRequest("/"+time.Duration(i).String())))
		waitAhead(t, p, i+1) // sent ahead in this order
	}
	if s := p.Stats(); s.Waiting != 0 {
		t.Fatalf("the requests behind were not sent ahead: %+v", s)
	}
	if _, err := first(); !errors.Is(err, ErrWorkerDied) {
		t.Errorf("first: err = %v, want ErrWorkerDied", err)
	}
	for i, wait := range behind {
		want := "slept " + time.Duration(i).String()
		if r, err := wait(); err != nil || r.body.String() != want {
			t.Errorf("request %d behind: %v %q, want it served by the replacement", i, err, r.body.String())
		}
	}
}

// TestSendAheadClientGone: the request sent ahead loses its client before its turn; the
// worker still reads its response to the end and serves the next request cleanly.
func TestSendAheadClientGone(t *testing.T) {
	p := startPool(t, fakeOptions(t, "stream", 1))
	setAheadAvg(p, aheadMaxAge)
	// Hold the worker with a request whose writer stalls until released.
	gate := make(chan struct{})
	firstRec := &gatedRecorder{gate: gate}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.Do(context.Background(), pathRequest("/"), firstRec)
	}()
	waitBusy(t, p, 1)
	gone := &recorder{failAt: 1}
	secondDone := make(chan error, 1)
	go func() { secondDone <- p.Do(context.Background(), pathRequest("/"), gone) }()
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	if err := <-secondDone; !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("second: err = %v, want the writer's error", err)
	}
	var again recorder
	if err := p.Do(context.Background(), pathRequest("/"), &again); err != nil || again.body.String() != "one,two,three" {
		t.Fatalf("next request: %v %q", err, again.body.String())
	}
}

// gatedRecorder is a recorder whose first Write waits for gate.
type gatedRecorder struct {
	recorder
	gate chan struct{}
	once sync.Once
}

func (g *gatedRecorder) Write(p []byte) (int, error) {
	g.once.Do(func() { <-g.gate })
	return g.recorder.Write(p)
}

// TestSendAheadWaitsAtMostQueueTimeout: behind a request that runs on, a request sent ahead
// gets ErrTimeout after QueueTimeout (its client a 504); its response is still read and
// dropped when its turn comes, and the worker then serves the next request in step.
func TestSendAheadWaitsAtMostQueueTimeout(t *testing.T) {
	opts := fakeOptions(t, "sleep", 1)
	opts.QueueTimeout = 200 * time.Millisecond
	p := startPool(t, opts)
	setAheadAvg(p, aheadMaxAge)
	first := doAsync(p, pathRequest("/600ms"))
	waitBusy(t, p, 1)
	start := time.Now()
	_, err := doAsync(p, pathRequest("/0s"))()
	waited := time.Since(start)
	var xe *ExchangeError
	if !errors.As(err, &xe) || !errors.Is(err, ErrTimeout) || xe.Started {
		t.Errorf("sent ahead: err = %v, want an ExchangeError wrapping ErrTimeout", err)
	}
	if waited < 150*time.Millisecond || waited > 500*time.Millisecond {
		t.Errorf("sent ahead: answered after %v, want about the 200ms queue timeout", waited)
	}
	if r, err := first(); err != nil || r.body.String() != "slept 600ms" {
		t.Errorf("first: %v %q", err, r.body.String())
	}
	var next recorder
	if err := p.Do(context.Background(), pathRequest("/10ms"), &next); err != nil || next.body.String() != "slept 10ms" {
		t.Errorf("next request: %v %q, want the worker in step", err, next.body.String())
	}
}

// TestSendAheadLearnsTheAverage: the average follows the requests' times.
func TestSendAheadLearnsTheAverage(t *testing.T) {
	p := startPool(t, fakeOptions(t, "sleep", 1))
	for range 40 {
		if err := p.Do(context.Background(), pathRequest("/2ms"), &recorder{}); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	avg := p.aheadAvg
	p.mu.Unlock()
	if avg < 2*time.Millisecond || avg > 50*time.Millisecond {
		t.Errorf("average after 40 requests of 2ms: %v", avg)
	}
}

// TestSendAheadFirstComeFirstServed: up to Options.SendAheadDepth requests are sent ahead
// behind the one a worker runs; a request that comes while others wait in the queue joins the queue; when the
// worker starts a request sent ahead, the first queued one is sent ahead in its place. A
// queued request with a body to stream is not: the worker comes back to the pool for it, and
// requests behind it wait their turn. Every request gets its own response, in order.
func TestSendAheadFirstComeFirstServed(t *testing.T) {
	cases := []struct {
		name       string
		depth      int  // Options.SendAheadDepth
		streamBody bool // the first queued request has a body to stream
	}{
		{name: "inline bodies", depth: DefaultSendAheadDepth},
		{name: "a body to stream first in the queue", depth: DefaultSendAheadDepth, streamBody: true},
		{name: "depth 1", depth: 1},
		{name: "depth 4", depth: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := fakeOptions(t, "sleep", 1)
			opts.SendAheadDepth = tc.depth
			p := startPool(t, opts)
			setAheadAvg(p, aheadMaxAge)
			var mu sync.Mutex
			var order []string
			run := func(d time.Duration, body bool) func() {
				path := "/" + d.String()
				req := pathRequest(path)
				if body {
					req.Body = strings.NewReader("")
				}
				done := doAsync(p, req)
				return func() {
					r, err := done()
					mu.Lock()
					order = append(order, path)
					mu.Unlock()
					if err != nil || r.body.String() != "slept "+d.String() {
						t.Errorf("%s: %v %q, want its own response", path, err, r.body.String())
					}
				}
			}
			// The first runs 300ms; tc.depth more are sent ahead, 100ms each.
			durations := []time.Duration{300 * time.Millisecond}
			for i := range tc.depth {
				durations = append(durations, 100*time.Millisecond+time.Duration(i)*time.Millisecond)
			}
			waits := []func(){run(durations[0], false)}
			waitBusy(t, p, 1)
			for i, d := range durations[1:] {
				waits = append(waits, run(d, false))
				waitAhead(t, p, i+1) // sent ahead in this order
			}
			if s := p.Stats(); s.Waiting != 0 {
				t.Errorf("want %d requests sent ahead, none in the queue: %+v", tc.depth, s)
			}
			queued := []time.Duration{50 * time.Millisecond, 10 * time.Millisecond}
			waits = append(waits, run(queued[0], tc.streamBody))
			time.Sleep(20 * time.Millisecond)
			waits = append(waits, run(queued[1], false)) // queued behind it
			time.Sleep(20 * time.Millisecond)
			if s := p.Stats(); s.Waiting != 2 {
				t.Errorf("want 2 requests in the queue, not overtaking it: %+v", s)
			}
			// The first request is done and the second runs: the first queued one is sent
			// ahead in its place, unless it has a body to stream.
			time.Sleep(300 * time.Millisecond)
			wantWaiting := 1
			if tc.streamBody {
				wantWaiting = 2
			}
			if s := p.Stats(); s.Waiting != wantWaiting {
				t.Errorf("while the second request runs: want %d in the queue: %+v", wantWaiting, s)
			}
			for _, wait := range waits {
				wait()
			}
			var want []string
			for _, d := range append(durations, queued...) {
				want = append(want, "/"+d.String())
			}
			if strings.Join(order, " ") != strings.Join(want, " ") {
				t.Errorf("served in the order %v, want %v", order, want)
			}
		})
	}
}

// TestSendAheadManyAtOnce: requests that come together onto one busy worker are written to
// its pipe in the order of their turns, though each is written by its own goroutine: every
// client gets the response to its own request.
func TestSendAheadManyAtOnce(t *testing.T) {
	p := startPool(t, fakeOptions(t, "sleep", 1))
	setAheadAvg(p, aheadMaxAge)
	for round := range 20 {
		var wg sync.WaitGroup
		for i := range 8 {
			us := round*100 + i + 1
			d := time.Duration(us) * time.Microsecond
			wg.Add(1)
			go func() {
				defer wg.Done()
				var r recorder
				if err := p.Do(context.Background(), pathRequest("/"+strconv.Itoa(us)+"us"), &r); err != nil || r.body.String() != "slept "+d.String() {
					t.Errorf("%v: %v %q, want its own response", d, err, r.body.String())
				}
			}()
		}
		wg.Wait()
	}
}

// TestAheadTurnList: the bookkeeping of the requests waiting behind one worker. Turns are
// handed out in order; one given back from the middle of the list is skipped; a lost worker
// fails all that are left; and each turn's frame waits for the one before it to be written.
func TestAheadTurnList(t *testing.T) {
	p := &Pool{}
	w := &worker{}
	p.mu.Lock()
	t1, t2, t3 := p.newTurnLocked(w), p.newTurnLocked(w), p.newTurnLocked(w)
	p.mu.Unlock()
	if p.ahead != 3 || t1.prev != nil || t2.prev != t1.written || t3.prev != t2.written {
		t.Fatalf("three turns: ahead %d, chained %v %v %v", p.ahead, t1.prev == nil, t2.prev == t1.written, t3.prev == t2.written)
	}
	// t2 gives its place back: it waits for t1's frame, then lets t3 write.
	unused := make(chan struct{})
	go func() { t2.unused(); close(unused) }()
	select {
	case <-unused:
		t.Fatal("a turn given back did not wait for the frame before it")
	case <-time.After(20 * time.Millisecond):
	}
	close(t1.written) // as t1.write does once its frame is out
	<-unused
	select {
	case <-t2.written:
	default:
		t.Fatal("t2 given back, but t3 may not write")
	}
	p.mu.Lock()
	if !p.dropTurnLocked(w, t2) || p.dropTurnLocked(w, t2) {
		t.Error("dropTurnLocked: want true once, then false")
	}
	if !p.passTurnLocked(w, nil) {
		t.Error("passTurnLocked: no turn")
	}
	p.mu.Unlock()
	if err := <-t1.ch; err != nil {
		t.Errorf("t1: %v, want its turn", err)
	}
	select {
	case err := <-t3.ch:
		t.Fatalf("t3 got %v before its turn", err)
	default:
	}
	p.mu.Lock()
	p.passTurnLocked(w, errAheadRetry) // the worker is lost
	left := p.ahead
	p.mu.Unlock()
	if err := <-t3.ch; !errors.Is(err, errAheadRetry) {
		t.Errorf("t3: %v, want errAheadRetry", err)
	}
	if left != 0 || len(w.ahead) != 0 {
		t.Errorf("after the worker is lost: ahead %d, list %d", left, len(w.ahead))
	}
}

// TestSendAheadCountsAgainstQueueSize: a request sent ahead waits for a worker like a queued
// one, and takes a place of the queue's.
func TestSendAheadCountsAgainstQueueSize(t *testing.T) {
	opts := fakeOptions(t, "sleep", 1)
	opts.QueueSize = 1
	p := startPool(t, opts)
	setAheadAvg(p, aheadMaxAge)
	first := doAsync(p, pathRequest("/200ms"))
	waitBusy(t, p, 1)
	second := doAsync(p, pathRequest("/0s")) // sent ahead: the one place is taken
	time.Sleep(50 * time.Millisecond)
	if s := p.Stats(); s.Waiting != 0 {
		t.Fatalf("the second request was not sent ahead: %+v", s)
	}
	if err := p.Do(context.Background(), pathRequest("/0s"), &recorder{}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("third request: err = %v, want ErrQueueFull", err)
	}
	for _, wait := range []func() (*recorder, error){first, second} {
		if _, err := wait(); err != nil {
			t.Error(err)
		}
	}
	p.mu.Lock()
	left := p.ahead
	p.mu.Unlock()
	if left != 0 {
		t.Errorf("%d requests still counted as sent ahead", left)
	}
}
