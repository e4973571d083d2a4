//go:build linux

// dispatch.go: the pool's side of the request path: the idle workers, the wait queue, the
// choice of a busy worker to send a request ahead to, and what a worker does next when a
// request ends. Everything here runs under Pool.mu for a few instructions; the workers' own
// goroutines do the rest (owner.go).

package pyrunner

import (
	"fmt"
	"time"
)

// workerState is where a worker (one channel) is in its life. Transitions (all through
// setStateLocked):
//
//	Starting → Idle      its READY arrived (onStarted)
//	Starting → Exited    it failed to start
//	Idle     → Busy      given a request (dispatch, or next when a request waits)
//	Busy     → Idle      its inbox is empty and nothing waits (next)
//	Idle, Busy → Draining  retired (max requests, max RSS, idle timeout, reload, shutdown):
//	                     its owner closes the channel once its inbox is empty
//	any      → Exited    its owner ended (the process died or exited)
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

// Send-ahead.
//
// When every worker is busy, a request would wait in the queue until a worker's END reaches
// the gateway, and the worker would sit idle until the gateway has been scheduled, read that
// END and written the next REQUEST. With Flask and two workers on two cores, each worker was
// idle half of the time. So a request that finds no idle worker may be put in the inbox of a
// busy one, whose owner writes it into the worker's pipe behind the request it runs: the
// worker finds it the moment it is done. The rules:
//
//   - Only a request whose body is all in its REQUEST frame, behind one whose body is too:
//     the worker reads no other frame (BODY) in between.
//   - First come, first served: a new request is sent ahead only when none waits in the
//     queue; a worker that becomes able to take one takes the queue's first.
//   - Up to Options.SendAheadDepth requests behind the running one, and only behind a request
//     younger than four times the average request time (at least aheadMinAge, at most
//     aheadMaxAge): one that has run longer than usual may be slow.
//   - Only in a static pool, at the current generation, on a worker that takes more requests
//     (not retiring, not at its --max-requests).
//   - A request sent ahead can always be taken back: the owner writes it only if its frame
//     fits in the pipe, and one already written is marked on the cancel board so that the
//     worker skips it. Its queue timeout and its cancellation work as in the queue.
//   - If the worker is lost before a request's turn, the request never started: it goes back
//     to the queue's front.
//
// Options.NoSendAhead turns it off.

// aheadMinAge and aheadMaxAge bound how long the request a worker is running may have run
// for another to be sent ahead behind it, however fast or slow requests are on average.
const (
	aheadMinAge = time.Millisecond
	aheadMaxAge = 10 * time.Millisecond
)

// aheadAvgShift sets the weight of each new duration in the moving average: 1/8.
const aheadAvgShift = 3

// DefaultSendAheadDepth is how many requests may wait behind the one a worker is running,
// unless Options.SendAheadDepth says otherwise.
const DefaultSendAheadDepth = 2

// MaxSendAheadDepth bounds Options.SendAheadDepth.
const MaxSendAheadDepth = 16

// dispatch hands c to an idle worker, or sends it ahead to a busy one, or puts it in the
// wait queue (waiting true: Do watches its queue timeout).
func (p *Pool) dispatch(c *call) (waiting bool, err error) {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return false, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.setStateLocked(w, stateBusy)
		p.giveLocked(w, c)
		lowSpare := p.opts.Mode == Dynamic && n-1 < p.opts.MinSpare*p.opts.Threads
		p.mu.Unlock()
		w.wake()
		if lowSpare {
			p.poke()
		}
		return false, nil
	}
	if len(p.waiters) == 0 && c.inline {
		if w := p.aheadWorkerLocked(); w != nil {
			p.giveLocked(w, c)
			p.noteWaitLocked()
			p.mu.Unlock()
			w.wake()
			return true, nil
		}
	}
	if len(p.waiters)+p.ahead >= p.opts.QueueSize {
		p.mu.Unlock()
		return false, ErrQueueFull
	}
	c.stage, c.queued = stageQueued, true
	p.waiters = append(p.waiters, c)
	p.noteWaitLocked()
	p.mu.Unlock()
	if p.opts.Mode != Static {
		p.poke() // a waiter may be reason to start a worker
	}
	return true, nil
}

// giveLocked puts c in w's inbox. The caller wakes w's owner once Pool.mu is released.
func (p *Pool) giveLocked(w *worker, c *call) {
	p.addQueuedLocked(w, 1)
	c.queued, c.w = false, w
	w.mu.Lock()
	c.stage = stageInbox
	w.inbox = append(w.inbox, slot{c: c})
	w.mu.Unlock()
}

// aheadWorkerLocked picks a busy worker to send a request ahead to; nil when none qualifies.
// The worker whose request started first goes first: it is likely to end first.
func (p *Pool) aheadWorkerLocked() *worker {
	if len(p.aheadable) == 0 || p.aheadAvg == 0 || p.ahead >= p.opts.QueueSize {
		return nil // nothing timed yet: no idea what slow means
	}
	now := time.Now()
	limit := min(aheadMaxAge, max(aheadMinAge, 4*p.aheadAvg))
	for i := 0; i < len(p.aheadable); i++ {
		w := p.aheadable[i]
		if now.Sub(w.aheadSince) >= limit {
			continue // maybe a slow request: nobody waits behind it
		}
		if !p.takesMoreLocked(w, 1) {
			p.unmarkAheadableLocked(w)
			i--
			continue
		}
		if !p.takesMoreLocked(w, 2) {
			p.unmarkAheadableLocked(w) // this one fills it
		}
		return w
	}
	return nil
}

// takesMoreLocked reports whether w may take n more requests into its inbox beyond what it
// holds: the send-ahead depth, and its process's --max-requests.
func (p *Pool) takesMoreLocked(w *worker, n int) bool {
	pr := w.p
	if pr.retiring || w.state != stateBusy || w.queued+n > 1+p.opts.SendAheadDepth {
		return false
	}
	return pr.maxRequests == 0 || pr.served+pr.outstandingLocked()+n <= pr.maxRequests
}

// markAheadable records that w runs a request, started at since, whose body went whole in its
// REQUEST: others may be sent ahead behind it. The queue's first requests go first.
func (p *Pool) markAheadable(w *worker, since time.Time) {
	if p.opts.NoSendAhead || p.opts.Mode != Static {
		return
	}
	p.mu.Lock()
	if w.state != stateBusy || w.p.gen != p.gen {
		p.mu.Unlock()
		return
	}
	w.aheadSince = since
	for len(p.waiters) > 0 && p.aheadAvg > 0 && p.takesMoreLocked(w, 1) {
		c := p.waiters[0]
		if !c.inline {
			break // a body to stream: the worker comes back to the pool for it at its end
		}
		p.waiters = p.waiters[1:]
		p.giveLocked(w, c)
	}
	if p.takesMoreLocked(w, 1) && !w.aheadable {
		w.aheadable = true
		p.aheadable = append(p.aheadable, w)
	}
	p.mu.Unlock() // the caller is w's owner: it looks at its inbox next
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

// next is called by w's owner when a call has ended (served says whether it reached the
// app): it counts it and decides what w does now. It returns false when w must stop taking
// requests (retired: its owner closes the channel once its inbox is empty).
func (p *Pool) next(w *worker, served bool, started time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unmarkAheadableLocked(w)
	p.addQueuedLocked(w, -1)
	pr := w.p
	if served {
		pr.served++
		p.ev.served++
		if !started.IsZero() {
			p.aheadAvg += (time.Since(started) - p.aheadAvg) >> aheadAvgShift
		}
		if pr.maxRequests > 0 && pr.served >= pr.maxRequests && !pr.retiring {
			p.retireLocked(pr, "max requests")
		}
	}
	return p.afterLocked(w)
}

// withdrawn is called when a call that w's owner had not taken yet was withdrawn.
func (p *Pool) withdrawn(w *worker) {
	p.mu.Lock()
	p.addQueuedLocked(w, -1)
	keep := p.afterLocked(w)
	p.mu.Unlock()
	if !keep {
		w.retireIdle()
	}
	w.wake()
}

// afterLocked decides what w does once a call has left its inbox: go on with the next one in
// its inbox, take the queue's first, or go idle; false when it is to close its channel
// (retired, or the pool is closing) once its inbox is empty.
func (p *Pool) afterLocked(w *worker) bool {
	switch {
	case w.state == stateExited || w.state == stateDraining:
		return w.queued > 0
	case w.queued > 0:
		return true // the next request is in its inbox already
	case p.closing || w.p.retiring:
		p.setStateLocked(w, stateDraining)
		p.poke() // a replacement may be due
		return false
	case len(p.waiters) > 0:
		c := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.setStateLocked(w, stateBusy)
		p.giveLocked(w, c)
		return true
	}
	p.setStateLocked(w, stateIdle)
	p.idle = append(p.idle, w)
	return true
}

// addQueuedLocked changes by delta the calls in w's inbox, and with them p.ahead: the calls
// waiting behind another in an inbox, which count against QueueSize with those in the queue.
func (p *Pool) addQueuedLocked(w *worker, delta int) {
	p.ahead -= max(0, w.queued-1)
	w.queued += delta
	p.ahead += max(0, w.queued-1)
}

// requeueLocked puts calls that never started (the worker they were given to is lost) back
// at the front of the queue, or fails those that were bounced too often.
func (p *Pool) requeueLocked(calls []*call, pid int) {
	var back []*call
	for _, c := range calls {
		c.retries++
		if c.retries > maxAheadRetries || p.closing {
			c.stage = stageEnded
			c.finish(&ExchangeError{PID: pid, Err: fmt.Errorf("%w: the workers it was handed to were lost before it started", ErrWorkerDied)})
			continue
		}
		c.stage, c.w, c.queued = stageQueued, nil, true
		back = append(back, c)
	}
	if len(back) == 0 {
		return
	}
	p.waiters = append(back, p.waiters...)
	for len(p.waiters) > 0 && len(p.idle) > 0 { // an idle worker takes them at once
		w := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		p.setStateLocked(w, stateBusy)
		c := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.giveLocked(w, c)
		w.wake()
	}
	p.poke()
}

// removeWaiterLocked takes c out of the wait queue.
func (p *Pool) removeWaiterLocked(c *call) {
	for i, x := range p.waiters {
		if x == c {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return
		}
	}
}

func (p *Pool) removeIdleLocked(w *worker) {
	for i, x := range p.idle {
		if x == w {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return
		}
	}
}

// outstandingLocked counts the requests in the inboxes of pr's workers.
func (pr *process) outstandingLocked() int {
	n := 0
	for _, w := range pr.slots {
		n += w.queued
	}
	return n
}

// discard kills the process of a worker that can no longer be trusted; the supervisor
// replaces it. A process that died by itself is counted as a crash; one the pool killed is not.
//
// why is the reason the pool kills it, for its exit's log line. A process whose channel
// closed (why "") is most likely exiting by itself: an app's sys.exit(), or a crash whose
// traceback it is still writing. Its exit status says which, so it gets diedGrace to exit
// before it is killed: killed at once, it would end by our SIGKILL.
func (p *Pool) discard(w *worker, why string) {
	if why != "" {
		p.mu.Lock()
		w.p.killed, w.p.killReason = true, why
		p.mu.Unlock()
		w.p.kill()
		return
	}
	w.p.closeChannels()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		w.p.killAfter(diedGrace)
	}()
}

// diedGrace is how long a process whose channel closed may take to exit by itself.
const diedGrace = 2 * time.Second

// poke wakes the supervisor without waiting for it.
func (p *Pool) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}
