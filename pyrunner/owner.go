//go:build linux

// owner.go: the one goroutine that owns a worker's channel. It takes requests from the
// worker's inbox, writes them into the pipe (the next ones ahead of time when they fit), reads
// the worker's frames and passes the response on, answers the worker's reads of the body,
// and applies the request's deadlines and cancellation. Nothing else reads or writes the
// channel.

package pyrunner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// slot is an entry of a worker's inbox: a call, or (c nil) the ghost of one withdrawn after
// its REQUEST was written, whose answer is read and dropped.
type slot struct {
	c       *call
	n       uint32 // its request number on the channel, once written
	size    int    // bytes of its REQUEST frame
	written bool
}

// wake tells w's owner that its inbox or a call in it changed.
func (w *worker) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
	if w.serving.Load() {
		w.conn.SetReadDeadline(past)
	}
}

// withdraw takes c back from w, for cause (see Pool.withdraw).
func (w *worker) withdraw(c *call, cause error) (bool, error) {
	w.mu.Lock()
	switch c.stage {
	case stageInbox:
		for i := range w.inbox {
			if w.inbox[i].c == c {
				w.inbox = append(w.inbox[:i], w.inbox[i+1:]...)
				break
			}
		}
		c.stage = stageEnded
		w.mu.Unlock()
		w.pool.withdrawn(w)
		return true, cause
	case stageWritten:
		// In the pipe behind another request: the worker skips it, and its owner reads and
		// drops what the worker sends for it.
		w.ghostLocked(c)
		w.mu.Unlock()
		return true, cause
	case stageWriting:
		// Its frame is being written: the owner ends it once the write is over.
		c.cancel = cause
		w.mu.Unlock()
		return false, nil
	case stageRunning:
		if !errors.Is(cause, ErrQueueTimeout) {
			c.cancel = cause
			w.mu.Unlock()
			w.wake()
			return false, nil
		}
	}
	w.mu.Unlock()
	return false, nil
}

// run is the owner goroutine: it serves the inbox until the worker is lost, retired or gone.
func (w *worker) run() {
	defer w.pool.wg.Done()
	defer func() {
		if w.p.owners.Add(-1) == 0 {
			w.p.board.release() // nobody writes it any more
		}
	}()
	defer w.shutdown()
	for w.awaitWork() {
		if !w.serveHead() {
			return
		}
	}
}

// shutdown takes w out of the pool as its owner ends: no request is handed to it any more,
// and those in its inbox, which never started, go back to the queue.
func (w *worker) shutdown() {
	w.serving.Store(false)
	p := w.pool
	p.mu.Lock()
	w.mu.Lock()
	var back []*call
	for _, s := range w.inbox {
		if s.c != nil {
			back = append(back, s.c)
		}
	}
	w.inbox = nil
	w.mu.Unlock()
	p.addQueuedLocked(w, -w.queued)
	p.unmarkAheadableLocked(w)
	p.removeIdleLocked(w)
	if w.state != stateExited {
		p.setStateLocked(w, stateDraining)
	}
	p.requeueLocked(back, w.p.pid)
	p.mu.Unlock()
}

// awaitWork waits, idle, until the inbox has a request; false when the worker is retired
// (its channel is closed: the runner exits) or its process ended.
func (w *worker) awaitWork() bool {
	for {
		w.mu.Lock()
		n, retire := len(w.inbox), w.retire
		w.mu.Unlock()
		if n > 0 {
			return true
		}
		if retire {
			w.conn.CloseWrite()
			return false
		}
		select {
		case <-w.kick:
		case <-w.p.done:
			return false
		}
	}
}

// retireIdle asks w to close its channel once its inbox is empty (Pool.retireLocked).
func (w *worker) retireIdle() {
	w.mu.Lock()
	w.retire = true
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// serveHead serves the first entry of the inbox to its end; false when the worker is lost.
func (w *worker) serveHead() bool {
	w.mu.Lock()
	head := w.inbox[0]
	c := head.c
	if c != nil {
		c.stage = stageRunning
	}
	w.mu.Unlock()

	w.begin(c)
	if !head.written {
		if err := w.writeRequest(c, w.startedAt.Add(w.pool.opts.QueueTimeout)); err != nil {
			// The worker is gone before the request reached it: it never started.
			return w.lose(fmt.Errorf("%w: send request: %w", ErrWorkerDied, err), true)
		}
	}
	if c == nil {
		w.stop(reasonAborted, nil) // a ghost the worker may have started: stop it
	} else if c.inline {
		w.pool.markAheadable(w, w.startedAt)
	}
	w.writeAhead()
	healthy, err := w.exchange(c != nil && c.inline || c == nil)
	w.serving.Store(false) // the next request's begin sets the read deadline before it reads
	if !healthy {
		return w.lose(err, false)
	}
	w.mu.Lock()
	w.inbox[0] = slot{}
	w.inbox = w.inbox[1:]
	w.mu.Unlock()
	// The worker goes back to the pool before the verdict goes out: a client that sends its
	// next request as soon as it has its answer finds the worker idle.
	served := c != nil && !w.skipped
	attached := w.cur
	w.end()
	keep := w.pool.next(w, served, w.aheadStart())
	if attached != nil {
		w.mu.Lock()
		attached.stage = stageEnded
		w.mu.Unlock()
		deliver(attached, err)
	}
	if !keep {
		w.mu.Lock()
		w.retire = true // the channel closes once the inbox is empty
		w.mu.Unlock()
	}
	return true
}

// aheadStart is when the request just ended started, if it was one another could be sent
// ahead behind (for the moving average of request times); zero otherwise.
func (w *worker) aheadStart() time.Time {
	if w.inlineReq && !w.stopped {
		return w.startedAt
	}
	return time.Time{}
}

// begin sets the owner's state for the request c (nil: a ghost) starting now.
func (w *worker) begin(c *call) {
	o := &w.pool.opts
	now := time.Now()
	w.cur, w.startedAt, w.started, w.stopped, w.skipped = c, now, false, false, false
	w.inlineReq = c == nil || c.inline // a ghost was sent ahead: its body went whole
	w.slowAt, w.softAt, w.killAt, w.resendAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	w.stopReason, w.drained, w.stoppedURI, w.stoppedID = 0, 0, "", ""
	if o.Timeout > 0 {
		w.killAt = now.Add(o.Timeout)
	}
	if o.SoftTimeout > 0 && (o.Timeout == 0 || o.SoftTimeout < o.Timeout) {
		w.softAt = now.Add(o.SoftTimeout)
	}
	if o.SlowTimeout > 0 && (o.Timeout == 0 || o.SlowTimeout < o.Timeout) {
		w.slowAt = now.Add(o.SlowTimeout)
	}
	w.serving.Store(true)
	w.armDeadline()
	if c != nil {
		// For a request written ahead, now is when the worker's previous response ended: the
		// moment the runner turns to it.
		c.req.WorkerPID, c.req.Started = w.p.pid, now
		if sw, ok := c.rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
			sw.SetWriteDeadline(earliest(w.softAt, w.killAt))
		}
		if o.TrackRequests {
			w.trackBegin(c.req)
		}
	}
}

// end clears what begin set for a call that ended.
func (w *worker) end() {
	if w.pool.opts.TrackRequests && w.tracking {
		w.trackEnd()
	}
	w.cur = nil
}

// finishCur sends the running call's verdict and detaches it: from now on its response is
// read and dropped, and its Request and ResponseWriter are not touched.
func (w *worker) finishCur(err error) {
	c := w.cur
	w.mu.Lock()
	c.stage = stageEnded
	if len(w.inbox) > 0 && w.inbox[0].c == c {
		// The call lives in its Request, which the caller reuses for its next request once
		// it has the verdict: no reference to it may outlive this.
		w.inbox[0].c = nil
	}
	w.mu.Unlock()
	if w.pool.opts.TrackRequests && w.tracking {
		w.trackEnd()
	}
	w.cur = nil
	deliver(c, err)
}

// deliver sends c's verdict, once the deadline begin set on its ResponseWriter is cleared:
// the caller may still write an error page.
func deliver(c *call, err error) {
	if sw, ok := c.rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
		sw.SetWriteDeadline(time.Time{})
	}
	c.finish(err)
}

// fail is the error of the running request, as Do returns it.
func (w *worker) fail(err error) error {
	return &ExchangeError{Started: w.started, PID: w.p.pid, Err: err}
}

// writeRequest numbers c's REQUEST frame and writes it before deadline, if it may have to
// wait for room in the pipe. A call written ahead
// is in stage writing meanwhile: a withdrawal waits for the write to end, because the frame
// is the caller's memory.
func (w *worker) writeRequest(c *call, deadline time.Time) error {
	w.mu.Lock()
	i := w.slotOfLocked(c)
	frame := c.req.finish()
	w.n++
	binary.LittleEndian.PutUint16(frame[6:], uint16(w.n))
	w.inbox[i].n, w.inbox[i].size, w.inbox[i].written = w.n, len(frame), true
	ahead := c.stage == stageInbox
	if ahead {
		c.stage = stageWriting
	}
	w.mu.Unlock()
	if w.inPipe+len(frame) <= w.conn.capacity/2 {
		deadline = time.Time{} // it fits: the write cannot wait, and no timer is armed for it
	}
	w.conn.SetWriteDeadline(deadline)
	_, err := w.conn.Write(frame)
	w.inPipe += len(frame)
	if ahead {
		w.mu.Lock()
		c.stage = stageWritten
		cause := c.cancel
		if cause != nil {
			w.ghostLocked(c)
		}
		w.mu.Unlock()
		if cause != nil {
			c.finish(cause)
		}
	}
	return err
}

// slotOfLocked is the index of c's entry in the inbox.
func (w *worker) slotOfLocked(c *call) int {
	for i := range w.inbox {
		if w.inbox[i].c == c {
			return i
		}
	}
	panic("pyrunner: call not in its worker's inbox")
}

// ghostLocked turns c, written ahead and withdrawn, into a ghost: marked cancelled on the
// board so that the worker skips it, and ended.
func (w *worker) ghostLocked(c *call) {
	i := w.slotOfLocked(c)
	w.inbox[i].c = nil
	w.p.board.cancel(w.ch, w.inbox[i].n, reasonAborted)
	c.stage = stageEnded
}

// writeAhead writes the REQUESTs of the inbox's next entries, in order, as long as the
// running request's body went whole (the worker reads no BODY in between) and each frame
// fits in the pipe with room to spare, so that the write never waits.
func (w *worker) writeAhead() {
	if !w.inlineReq {
		return
	}
	for {
		w.mu.Lock()
		var c *call
		for i := 1; i < len(w.inbox); i++ {
			if !w.inbox[i].written {
				c = w.inbox[i].c
				break
			}
		}
		if c == nil || !c.inline || w.inPipe+c.req.frameSize() > w.conn.capacity/2 {
			w.mu.Unlock()
			return // it waits in the inbox until its turn
		}
		w.mu.Unlock()
		if err := w.writeRequest(c, time.Now().Add(time.Second)); err != nil {
			return // the worker is gone: the read says so
		}
	}
}

// lose handles a worker that can no longer be trusted: it is killed (the supervisor replaces
// it) and the running request fails with err, or is handed out again when it never started.
// The requests behind it never started either: the owner's shutdown hands them out again.
func (w *worker) lose(err error, neverStarted bool) bool {
	if errors.Is(err, errKill) {
		why := "request past --timeout"
		if w.stopped {
			why = "request did not stop within --cancel-grace"
			err = fmt.Errorf("%w: it did not stop within %v of being cancelled", ErrTimeout, w.pool.opts.CancelGrace)
			w.log.Error("request did not stop when cancelled: killing the worker; its Python stack follows",
				"cancel_grace", w.pool.opts.CancelGrace.String(), "request_id", w.requestID(), "uri", w.uri(), "stack", w.p.dumpStack())
		} else {
			w.pool.st.hardTimeouts.Add(1)
			err = fmt.Errorf("%w after %v", ErrTimeout, time.Since(w.startedAt).Round(time.Millisecond))
			w.log.Error("request timed out: killing the worker; its Python stack follows",
				"timeout", w.pool.opts.Timeout.String(), "request_id", w.requestID(), "uri", w.uri(), "stack", w.p.dumpStack())
		}
		w.pool.discard(w, why)
	} else {
		if !neverStarted && w.cur != nil && errors.Is(err, ErrWorkerDied) {
			w.log.Warn("worker lost while running a request", "request_id", w.requestID(), "uri", w.uri(), "error", err)
		}
		why := ""
		if !errors.Is(err, ErrWorkerDied) {
			why = err.Error()
		}
		w.pool.discard(w, why)
	}
	head := w.cur
	if neverStarted {
		head = nil // shutdown hands it out again
	} else {
		w.mu.Lock()
		w.inbox = w.inbox[1:] // the running request: it ends here
		w.mu.Unlock()
		w.pool.mu.Lock()
		w.pool.addQueuedLocked(w, -1)
		w.pool.mu.Unlock()
	}
	if head != nil {
		var xe *ExchangeError
		if !errors.As(err, &xe) || errors.Is(err, errKill) {
			err = w.fail(err)
		}
		w.cur = head
		w.finishCur(err)
	}
	w.end()
	return false
}

// requestID is the running request's Request.ID for a log line; once it is detached, what it
// was when it was stopped.
func (w *worker) requestID() string {
	if w.cur == nil {
		return w.stoppedID
	}
	return string(w.cur.req.ID)
}

// uri is the running request's REQUEST_URI for a log line; once it is detached, what it was
// when it was stopped.
func (w *worker) uri() string {
	if w.cur == nil {
		return w.stoppedURI
	}
	return w.cur.req.lookup("REQUEST_URI")
}
