// handout.go: the request path through the pool: a worker's states, handing out an idle
// worker (or waiting for one in the bounded queue), and taking it back.

package pyrunner

import (
	"context"
	"time"
)

// workerState is where a worker is in its life. Transitions (all through setStateLocked):
//
//	Starting → Idle      its READY arrived (onStarted)
//	Starting → Exited    it failed to start
//	Idle     → Busy      handed to a request (acquire, releaseLocked to a waiter)
//	Busy     → Idle      its request ended cleanly (releaseLocked)
//	Idle, Busy → Draining  retired (max requests, max RSS, idle timeout, reload, shutdown):
//	                     its channel is closed and the runner exits
//	any      → Exited    its process ended (onExited)
type workerState uint8

const (
	stateStarting workerState = iota
	stateIdle
	stateBusy
	stateDraining
	stateExited
	numStates
)

func (s workerState) String() string {
	switch s {
	case stateStarting:
		return "Starting"
	case stateIdle:
		return "Idle"
	case stateBusy:
		return "Busy"
	case stateDraining:
		return "Draining"
	case stateExited:
		return "Exited"
	}
	return "state(?)"
}

// waiter is a request waiting in the queue.
type waiter struct {
	ch     chan handoff // buffered: the pool never waits to hand out
	inline bool         // its body is all in its REQUEST: it may be sent ahead (ahead.go)
}

// handoff is what a waiter gets: a worker of its own (turn nil), or a busy worker it is sent
// ahead to (ahead.go); no worker when the pool closed.
type handoff struct {
	w    *worker
	turn *aheadTurn
}

// acquire hands out an idle worker, or a busy one with req sent ahead to it (turn not nil:
// the caller writes req, then waits for its turn), or waits for either in the bounded queue.
func (p *Pool) acquire(ctx context.Context, req *Request) (*worker, *aheadTurn, error) {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil, nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.setStateLocked(w, stateBusy)
		lowSpare := p.opts.Mode == Dynamic && n-1 < p.opts.MinSpare*p.opts.Threads
		p.mu.Unlock()
		if lowSpare {
			p.poke()
		}
		return w, nil, nil
	}
	if len(p.waiters) == 0 { // requests that came first go first
		if w, turn := p.sendAheadLocked(req); w != nil {
			p.mu.Unlock()
			return w, turn, nil
		}
	}
	if len(p.waiters)+p.ahead >= p.opts.QueueSize {
		p.mu.Unlock()
		return nil, nil, ErrQueueFull
	}
	wt := &waiter{ch: make(chan handoff, 1), inline: req != nil && req.Body == nil}
	p.waiters = append(p.waiters, wt)
	p.noteWaitLocked()
	p.mu.Unlock()
	if p.opts.Mode != Static {
		p.poke() // a waiter may be reason to start a worker
	}

	timer := time.NewTimer(p.opts.QueueTimeout)
	defer timer.Stop()
	var err error
	select {
	case h := <-wt.ch:
		if h.w == nil {
			return nil, nil, ErrClosed
		}
		return h.w, h.turn, nil
	case <-timer.C:
		err = ErrQueueTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == wt {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return nil, nil, err
		}
	}
	p.mu.Unlock()
	// A worker was handed to us as we gave up: pass it on.
	if h := <-wt.ch; h.w != nil {
		p.giveBack(h)
	}
	return nil, nil, err
}

// giveBack returns what a waiter that gave up was handed: its worker, or its place behind a
// busy worker's request (ahead.go), which it has not used.
func (p *Pool) giveBack(h handoff) {
	if h.turn == nil {
		p.release(h.w)
		return
	}
	h.turn.unused()
	p.mu.Lock()
	if p.dropTurnLocked(h.w, h.turn) {
		// The turn will not come: with nobody else behind it, the worker goes back to the
		// pool at its end.
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	if err := <-h.turn.ch; err == nil {
		p.release(h.w) // the turn came first: the worker is ours, unused
	}
}

// poke wakes the supervisor without waiting for it.
func (p *Pool) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// release takes back a worker whose request ended cleanly, and counts the request. A request
// sent ahead to it gets it instead, without it going back to the pool.
func (p *Pool) release(w *worker) {
	p.mu.Lock()
	w.p.served++
	p.noteDurationLocked(w)
	if p.passTurnLocked(w, nil) {
		p.mu.Unlock()
		return
	}
	retired := p.releaseLocked(w)
	p.mu.Unlock()
	if retired {
		p.poke() // a replacement may be due
	}
}

// releaseLocked gives w to the longest waiter, else to the idle stack; or retires it when its
// process has served its requests or was marked for retirement. It reports whether w was
// retired.
func (p *Pool) releaseLocked(w *worker) (retired bool) {
	pr := w.p
	switch {
	case w.state == stateExited || w.state == stateDraining:
		return false
	case p.closing:
		p.setStateLocked(w, stateDraining)
		w.stop()
		return false
	case pr.maxRequests > 0 && pr.served >= pr.maxRequests && !pr.retiring:
		p.retireLocked(pr, "max requests")
		fallthrough
	case pr.retiring:
		p.setStateLocked(w, stateDraining)
		w.stop()
		return true
	}
	if len(p.waiters) > 0 {
		wt := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.setStateLocked(w, stateBusy)
		wt.ch <- handoff{w: w} // buffered: never blocks
		return false
	}
	p.setStateLocked(w, stateIdle)
	p.idle = append(p.idle, w)
	return false
}

// discard kills the process of a worker that can no longer be trusted; the supervisor
// replaces it. A process that died by itself is counted as a crash; one the pool killed is not.
func (p *Pool) discard(w *worker, killed bool) {
	if killed {
		p.mu.Lock()
		w.p.killed = true
		p.mu.Unlock()
	}
	w.p.kill()
}

func (p *Pool) removeIdleLocked(w *worker) {
	for i, x := range p.idle {
		if x == w {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return
		}
	}
}
