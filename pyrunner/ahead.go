// ahead.go: sending a request ahead to a busy worker, so that it finds its next request in
// its pipe the moment it ends the current one.

package pyrunner

import (
	"errors"
	"time"
)

// Send-ahead.
//
// When every worker is busy, a request would wait in the pool's queue until a worker's END
// reaches the gateway, and the worker would sit idle until the gateway has been scheduled,
// read that END and written the next REQUEST. On a machine whose cores are all busy (the
// workers themselves, the web server), that gap was as long as the request itself: with Flask
// and two workers on two cores, each worker was idle half of the time.
//
// So a request that finds no idle worker may instead be written at once behind the request a
// busy worker is running (the worker reads one frame at a time, so it does not see it until it
// has sent that request's END), and waits for its turn; when the request ahead of it ends, it
// takes the worker over without the worker going back to the pool. This is what a prefork
// server gets from its listening socket's queue. The conditions keep it safe:
//
//   - Only a request whose body is all in its REQUEST frame, behind a request whose body is
//     too: the worker reads no other frame (BODY) in between, so the two never interleave.
//   - First come, first served: a new request is sent ahead only when none waits in the
//     queue; otherwise, when a worker starts a request, the first one in the queue is sent
//     ahead behind it (unless that one has a body to stream: then the worker comes back to
//     the pool at its end and the queue's first request gets it).
//   - Up to Options.SendAheadDepth requests ahead per worker, written to its pipe in the
//     order of their turns (aheadTurn), and only behind a request younger than four times the
//     average time requests take (a moving average of the requests that could have had one
//     sent behind them; at least aheadMinAge, for the preemptions of a busy machine) and
//     never older than aheadMaxAge: a request that has run longer than usual may be a slow
//     one, and one waiting behind it could not move to a worker that frees up first (it can
//     no longer be taken back). A request that has just started can still turn out slow;
//     then the one behind it waits for it. With fast requests that window is the first
//     millisecond of a slow request's life.
//   - Only in a static pool, at the current generation, on a process that is not retiring: a
//     dynamic or ondemand pool grows when requests wait, and must see them wait.
//   - If the request ahead fails in a way that costs the worker (it dies, times out, breaks
//     the protocol), those behind it never started: they go back to the pool and are handed
//     out again. Once it has the worker, it is an ordinary request (its timeouts start then).
//   - Requests sent ahead count against Options.QueueSize with those in the queue: it bounds
//     the requests waiting for a worker, wherever they wait.
//   - A request waits for its turn at most Options.QueueTimeout, as long as it could have
//     waited in the queue; then its client gets a 504 (the request ahead is stuck), and the
//     pool still reads and discards its response when its turn comes, so the worker stays
//     in step.
//
// Options.NoSendAhead turns it off: every request waits in the queue for an idle worker.

// aheadMinAge and aheadMaxAge bound how long the request a worker is running may have run
// for another to be sent ahead behind it, however fast or slow requests are on average.
const (
	aheadMinAge = time.Millisecond
	aheadMaxAge = 10 * time.Millisecond
)

// aheadAvgShift sets the weight of each new duration in the moving average: 1/8.
const aheadAvgShift = 3

// DefaultSendAheadDepth is how many requests may wait behind the one a worker is running,
// unless Options.SendAheadDepth says otherwise. With one, a worker that ended its request
// still found its pipe empty, before the gateway had been scheduled to send the next, about a
// quarter of the time (Flask, two workers on two cores); with two it goes on for two
// requests' time, and the gateway, under SCHED_BATCH, relays more per wake-up. Deeper
// measured a little faster again (+3 % with three, +5 % with four) but each more is one more
// request that may wait behind a slow one.
const DefaultSendAheadDepth = 2

// MaxSendAheadDepth bounds Options.SendAheadDepth.
const MaxSendAheadDepth = 16

// maxAheadRetries bounds how often one request goes back to the pool because the workers it
// was sent ahead to failed before its turn.
const maxAheadRetries = 3

// errAheadRetry is what a request sent ahead gets instead of its turn when the worker failed
// before it: it never started, and is handed out again.
var errAheadRetry = errors.New("the request ahead failed; hand this one out again")

// aheadTurn is a request sent ahead to a worker: the request ahead of it gives it the worker
// (nil) or errAheadRetry.
//
// Requests sent ahead to one worker must reach its pipe in the order of their turns, but each
// is written by its own goroutine: a turn's frame is written only after the frame of the turn
// before it (prev, nil when that one is the request the worker is running, already written),
// and written is closed once it is out, or once it is known it never will be.
type aheadTurn struct {
	ch      chan error // buffered: the sender never waits
	prev    <-chan struct{}
	written chan struct{}
}

// newTurnLocked books a new turn at the end of w's list.
func (p *Pool) newTurnLocked(w *worker) *aheadTurn {
	t := &aheadTurn{ch: make(chan error, 1), written: make(chan struct{})}
	if n := len(w.ahead); n > 0 {
		t.prev = w.ahead[n-1].written
	}
	w.ahead = append(w.ahead, t)
	p.ahead++
	return t
}

// write sends req's REQUEST frame down w's pipe in its turn's order.
func (t *aheadTurn) write(w *worker, req *Request) error {
	defer close(t.written)
	if t.prev != nil {
		<-t.prev
	}
	_, err := w.conn.Write(req.finish())
	return err
}

// unused marks a turn whose request will never be written, once the one before it is out.
func (t *aheadTurn) unused() {
	if t.prev != nil {
		<-t.prev
	}
	close(t.written)
}

// markAheadable records that w is running req, whose REQUEST (all of its body inline) is
// written: another request may be sent ahead behind it (unless turned off). The first request
// in the queue, if any, is sent at once; a request that came later never overtakes it.
func (p *Pool) markAheadable(w *worker, req *Request) {
	if p.opts.NoSendAhead || p.opts.Mode != Static || !req.bodyEOF {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.state != stateBusy || w.p.retiring || w.p.gen != p.gen {
		return
	}
	w.aheadSince = time.Now() // also the start of the duration noteDurationLocked takes
	for len(w.ahead) < p.opts.SendAheadDepth && len(p.waiters) > 0 {
		// A queued request with a body to stream cannot be sent ahead: then the worker must
		// come back to the pool at its end, for it.
		wt := p.waiters[0]
		if !wt.inline || p.aheadAvg == 0 {
			return
		}
		p.waiters = p.waiters[1:]
		wt.ch <- handoff{w: w, turn: p.newTurnLocked(w)}
	}
	if len(w.ahead) < p.opts.SendAheadDepth && !w.aheadable {
		w.aheadable = true
		p.aheadable = append(p.aheadable, w)
	}
}

// sendAheadLocked picks a worker to send req ahead to and books it; nil when none qualifies.
// The worker that started its request first goes first: it is likely to end first.
func (p *Pool) sendAheadLocked(req *Request) (*worker, *aheadTurn) {
	if len(p.aheadable) == 0 || req == nil || req.Body != nil || len(p.waiters)+p.ahead >= p.opts.QueueSize {
		return nil, nil
	}
	now := time.Now()
	limit := min(aheadMaxAge, max(aheadMinAge, 4*p.aheadAvg))
	if p.aheadAvg == 0 {
		return nil, nil // nothing timed yet: no idea what slow means
	}
	for i, w := range p.aheadable {
		if now.Sub(w.aheadSince) >= limit {
			continue // maybe a slow request: nobody waits behind it
		}
		t := p.newTurnLocked(w)
		if len(w.ahead) >= p.opts.SendAheadDepth {
			p.aheadable = append(p.aheadable[:i], p.aheadable[i+1:]...)
			w.aheadable = false
		}
		return w, t
	}
	return nil, nil
}

// unmarkAheadableLocked takes w off the list of workers a request may be sent ahead to.
func (p *Pool) unmarkAheadableLocked(w *worker) {
	if !w.aheadable {
		return
	}
	w.aheadable = false
	for i, x := range p.aheadable {
		if x == w {
			p.aheadable = append(p.aheadable[:i], p.aheadable[i+1:]...)
			return
		}
	}
}

// noteDurationLocked adds the request w has just ended cleanly to the moving average of
// request times, if it was one another could have been sent ahead behind.
func (p *Pool) noteDurationLocked(w *worker) {
	if w.aheadSince.IsZero() {
		return
	}
	d := time.Since(w.aheadSince)
	w.aheadSince = time.Time{}
	p.aheadAvg += (d - p.aheadAvg) >> aheadAvgShift
}

// passTurnLocked ends w's current request: a request sent ahead behind it gets the worker
// (err nil: w stays Busy, and the caller must not release it) or errAheadRetry. It reports
// whether a request was waiting.
func (p *Pool) passTurnLocked(w *worker, err error) bool {
	p.unmarkAheadableLocked(w)
	if len(w.ahead) == 0 {
		return false
	}
	if err != nil {
		// The worker is lost: none of the requests behind it will start there.
		for i, t := range w.ahead {
			t.ch <- err
			w.ahead[i] = nil
		}
		p.ahead -= len(w.ahead)
		w.ahead = w.ahead[:0]
		return true
	}
	t := w.ahead[0]
	n := copy(w.ahead, w.ahead[1:])
	w.ahead[n] = nil
	w.ahead = w.ahead[:n]
	p.ahead--
	t.ch <- nil
	return true
}

// dropTurnLocked takes t, a turn that will not be used (its request was never written), off
// w's list; it reports whether t was still there.
func (p *Pool) dropTurnLocked(w *worker, t *aheadTurn) bool {
	for i, x := range w.ahead {
		if x == t {
			n := copy(w.ahead[i:], w.ahead[i+1:])
			w.ahead[i+n] = nil
			w.ahead = w.ahead[:i+n]
			p.ahead--
			return true
		}
	}
	return false
}

// failAhead hands the requests sent ahead behind w, if any, back to the pool: w is lost.
func (p *Pool) failAhead(w *worker) {
	p.mu.Lock()
	p.passTurnLocked(w, errAheadRetry)
	p.mu.Unlock()
}

// waitTurn waits for the request ahead to pass the turn, at most QueueTimeout; waited is false
// when it did not come in time.
func (p *Pool) waitTurn(t *aheadTurn) (err error, waited bool) {
	timer := time.NewTimer(p.opts.QueueTimeout)
	defer timer.Stop()
	select {
	case err := <-t.ch:
		return err, true
	case <-timer.C:
		return nil, false
	}
}

// abandonAhead hands a request sent ahead whose client has been answered to a goroutine that
// waits for its turn and discards its response, so that the worker's frames stay in step. req
// belongs to the caller, which reuses it: the goroutine keeps a copy of what it needs.
func (p *Pool) abandonAhead(w *worker, t *aheadTurn, req *Request) {
	ghost := &Request{frame: append([]byte(nil), req.frame...), envEnd: req.envEnd, bodyEOF: req.bodyEOF}
	go func() {
		if err := <-t.ch; err != nil {
			return // the worker failed first: the request never ran
		}
		p.serve(w, ghost, discardWriter{}, true)
	}()
}

// discardWriter is the ResponseWriter of a request nobody waits for: it refuses the response,
// which makes the exchange read it to its end and drop it.
type discardWriter struct{}

var errNobodyWaits = errors.New("the client was answered already")

func (discardWriter) WriteHeader([]byte, Header) error { return errNobodyWaits }
func (discardWriter) Write([]byte) (int, error)        { return 0, errNobodyWaits }
func (discardWriter) Flush() error                     { return errNobodyWaits }
