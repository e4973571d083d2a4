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
	"io"
	"os"
	"syscall"
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

// Deadlines of cancellation: after the app is told to stop (the cancel board and SIGUSR2),
// SIGUSR2 is sent again every interruptResend until the request ends, and the worker is
// killed if it has not ended within Options.CancelGrace.
const interruptResend = 200 * time.Millisecond

// drainLimit bounds what the gateway reads and throws away from a request it has stopped,
// before it prefers to kill and replace the worker.
const drainLimit = 8 << 20

// errKill is what onWake returns when the worker must be killed: the running request passed
// Options.Timeout, or did not stop within Options.CancelGrace.
var errKill = errors.New("kill the worker")

// past is a read deadline that has passed: setting it wakes an owner blocked in a read.
var past = time.Unix(1, 0)

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
	w.serving.Store(false)
	w.conn.SetReadDeadline(time.Time{})
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
	w.stopReason, w.drained = 0, 0
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
		c.req.WorkerPID = w.p.pid
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

// writeRequest numbers c's REQUEST frame and writes it before deadline. A call written ahead
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

// armDeadline sets the read deadline to the earliest time the owner must act at.
func (w *worker) armDeadline() {
	w.conn.SetReadDeadline(earliest(w.slowAt, w.softAt, w.killAt, w.resendAt))
}

// earliest returns the earliest of the non-zero times, or zero.
func earliest(ts ...time.Time) time.Time {
	var e time.Time
	for _, t := range ts {
		if !t.IsZero() && (e.IsZero() || t.Before(e)) {
			e = t
		}
	}
	return e
}

// onWake runs when a read from the worker passed its deadline: a poke (the inbox changed,
// the running request was cancelled) or one of the running request's deadlines. It returns
// errKill when the worker must be killed.
func (w *worker) onWake() error {
	w.mu.Lock()
	var cancel error
	if w.cur != nil && w.cur.cancel != nil {
		cancel, w.cur.cancel = w.cur.cancel, nil
	}
	w.mu.Unlock()
	if cancel != nil {
		w.stop(reasonAborted, cancel)
	}
	w.writeAhead()
	now := time.Now()
	if !w.slowAt.IsZero() && !now.Before(w.slowAt) {
		w.slowAt = time.Time{}
		w.logSlow()
	}
	if !w.softAt.IsZero() && !now.Before(w.softAt) {
		w.softAt = time.Time{}
		w.pool.st.softTimeouts.Add(1)
		w.log.Warn("request passed --soft-timeout: interrupting the app", "soft_timeout", w.pool.opts.SoftTimeout, "uri", w.uri())
		w.stop(reasonSoftTimeout, fmt.Errorf("%w: soft timeout after %v", ErrTimeout, w.pool.opts.SoftTimeout))
	}
	if !w.resendAt.IsZero() && !now.Before(w.resendAt) {
		w.p.handle.Signal(syscall.SIGUSR2)
		w.resendAt = now.Add(interruptResend)
	}
	if !w.killAt.IsZero() && !now.Before(w.killAt) {
		return errKill
	}
	w.armDeadline()
	return nil
}

// stop cancels the running request for reason: marked on the board, the app interrupted,
// the call detached with err (nil: it is a ghost, or detached already), and a grace period
// after which the worker is killed. Once per request.
func (w *worker) stop(reason uint32, err error) {
	if w.stopped {
		if w.cur != nil && err != nil {
			w.finishCur(w.fail(err))
		}
		return
	}
	w.stopped, w.stopReason = true, reason
	w.p.board.cancel(w.ch, w.curN(), reason)
	w.p.handle.Signal(syscall.SIGUSR2)
	now := time.Now()
	w.resendAt = now.Add(interruptResend)
	if reason == reasonAborted {
		// The web server gave up, perhaps after --timeout passed while the gateway waited for
		// it to read: the app was not at fault, and gets its grace period to stop.
		w.killAt = now.Add(w.pool.opts.CancelGrace)
	} else {
		w.killAt = earliest(w.killAt, now.Add(w.pool.opts.CancelGrace))
	}
	w.slowAt, w.softAt = time.Time{}, time.Time{}
	if w.cur != nil && err != nil {
		w.finishCur(w.fail(err))
	}
	w.armDeadline()
}

// curN is the request number of the inbox's head, the running request.
func (w *worker) curN() uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inbox[0].n
}

// lose handles a worker that can no longer be trusted: it is killed (the supervisor replaces
// it) and the running request fails with err, or is handed out again when it never started.
// The requests behind it never started either: the owner's shutdown hands them out again.
func (w *worker) lose(err error, neverStarted bool) bool {
	if errors.Is(err, errKill) {
		if w.stopped {
			err = fmt.Errorf("%w: it did not stop within %v of being cancelled", ErrTimeout, w.pool.opts.CancelGrace)
			w.log.Error("request did not stop when cancelled: killing the worker; its Python stack follows",
				"cancel_grace", w.pool.opts.CancelGrace, "uri", w.uri(), "stack", w.p.dumpStack())
		} else {
			err = fmt.Errorf("%w after %v", ErrTimeout, time.Since(w.startedAt).Round(time.Millisecond))
			w.log.Error("request timed out: killing the worker; its Python stack follows",
				"timeout", w.pool.opts.Timeout, "uri", w.uri(), "stack", w.p.dumpStack())
		}
		w.pool.discard(w, true)
	} else {
		w.pool.discard(w, !errors.Is(err, ErrWorkerDied))
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

// uri is the running request's REQUEST_URI for a log line; "" once it is detached.
func (w *worker) uri() string {
	if w.cur == nil {
		return ""
	}
	return w.cur.req.lookup("REQUEST_URI")
}

// channelReader is what the worker's bufio.Reader reads from: the channel, with the owner's
// deadlines and pokes handled (onWake) while it serves. No bytes are lost: a deadline error
// comes only from a read that returned nothing.
type channelReader struct{ w *worker }

func (r channelReader) Read(b []byte) (int, error) {
	w := r.w
	for {
		n, err := w.conn.Read(b)
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !w.serving.Load() {
			return n, err
		}
		if err := w.onWake(); err != nil {
			return 0, err
		}
	}
}

// exchange reads the running request's frames until the one that ends it, passing the
// response to the call's ResponseWriter until it is detached. inline says no body is to be
// streamed (a READ is then a protocol error). healthy reports whether the worker can take
// another request; err is the request's verdict when it is still attached.
func (w *worker) exchange(inline bool) (healthy bool, err error) {
	var sinkErr error // first error from the ResponseWriter: the rest is dropped
	bodyEOF := inline
	var hdr [frameHeaderLen]byte
	first := true
	for {
		if _, err := io.ReadFull(w.br, hdr[:]); err != nil {
			return false, w.fail(died(err))
		}
		h, err := parseFrameHeader(hdr[:])
		if err != nil {
			return false, w.fail(err)
		}
		if first {
			first = false
			w.inPipe = max(0, w.inPipe-w.inbox0Size()) // the worker has read its REQUEST
		}
		n := int(h.length)
		switch h.typ {
		case frameAborted:
			if n != 0 {
				return false, w.fail(fmt.Errorf("%w: ABORTED with a payload", errProtocol))
			}
			if !w.stopped {
				return false, w.fail(fmt.Errorf("%w: ABORTED for a request not cancelled", errProtocol))
			}
			if !w.started {
				w.skipped = true
			}
			return true, w.fail(ErrCanceled)
		case frameStart:
			if w.started {
				return false, w.fail(fmt.Errorf("%w: second START", errProtocol))
			}
			if n < 4 {
				return false, w.fail(fmt.Errorf("%w: short START", errProtocol))
			}
			var lb [4]byte
			if _, err := io.ReadFull(w.br, lb[:]); err != nil {
				return false, w.fail(died(err))
			}
			hl := int(binary.LittleEndian.Uint32(lb[:]))
			if hl > maxHeaderBlock || hl > n-4 {
				return false, w.fail(fmt.Errorf("%w: header block of %d bytes", errProtocol, hl))
			}
			block, err := w.readBlock(hl)
			if err != nil {
				return false, w.fail(died(err))
			}
			n -= 4 + hl
			if w.cur == nil {
				w.started = true
				break
			}
			status, header, perr := parseHeaderBlock(block)
			if perr != nil {
				// Nothing has reached the client: the caller answers 500. The rest is dropped.
				w.finishCur(w.fail(fmt.Errorf("%w: %v", ErrBadHeader, perr)))
				w.started = true
				break
			}
			w.started = true
			if sinkErr = w.cur.rw.WriteHeader(status, header); sinkErr != nil {
				w.stop(reasonAborted, clientGone(sinkErr))
			}
		case frameData:
			if !w.started {
				return false, w.fail(fmt.Errorf("%w: DATA before START", errProtocol))
			}
		case frameRead:
			if n != 4 {
				return false, w.fail(fmt.Errorf("%w: READ of %d bytes", errProtocol, n))
			}
			var lb [4]byte
			if _, err := io.ReadFull(w.br, lb[:]); err != nil {
				return false, w.fail(died(err))
			}
			if inline {
				// The runner sends no READ for a body sent whole; and requests sent ahead may
				// be in the pipe.
				return false, w.fail(fmt.Errorf("%w: READ for a body sent whole", errProtocol))
			}
			want := int(binary.LittleEndian.Uint32(lb[:]))
			if bodyEOF {
				want = 0
			}
			eof, err := w.sendBody(want)
			if err != nil {
				if errors.Is(err, errKill) {
					return false, err
				}
				return false, w.fail(fmt.Errorf("%w: send body: %w", ErrWorkerDied, err))
			}
			bodyEOF = bodyEOF || eof
			continue
		default:
			return false, w.fail(fmt.Errorf("%w: unexpected %v frame", errProtocol, h.typ))
		}

		// Body bytes of START or DATA.
		if w.cur != nil && sinkErr == nil {
			left, werr, err := w.copyOut(n)
			if err != nil {
				return false, w.fail(err)
			}
			if werr != nil {
				// The web server went away or stopped reading: the request is cancelled
				// before the rest is read, so that its grace period starts now.
				sinkErr = werr
				w.stop(reasonAborted, clientGone(werr))
			}
			n = left
		}
		if err := w.dropBody(n); err != nil {
			return false, err
		}
		if h.flags&flagEnd != 0 {
			if h.flags&flagError != 0 {
				return true, w.fail(ErrAppFailed)
			}
			if sinkErr != nil {
				return true, w.fail(clientGone(sinkErr))
			}
			return true, nil
		}
		if w.cur != nil && sinkErr == nil {
			sinkErr = w.cur.rw.Flush()
		}
		if sinkErr != nil && w.cur != nil {
			// The web server went away or stopped reading: the request is cancelled.
			w.stop(reasonAborted, clientGone(sinkErr))
		}
	}
}

// clientGone is the verdict of a request whose response could not be written.
func clientGone(err error) error {
	return fmt.Errorf("%w: writing the response: %w", ErrCanceled, err)
}

// inbox0Size is the size of the running request's REQUEST frame.
func (w *worker) inbox0Size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inbox[0].size
}

// dropBody reads and drops n bytes of a response nobody receives; past drainLimit the
// worker is killed instead.
func (w *worker) dropBody(n int) error {
	if n == 0 {
		return nil
	}
	w.drained += n
	if w.drained > drainLimit {
		return w.fail(fmt.Errorf("%w: the app went on sending after its request was cancelled", ErrWorkerDied))
	}
	if _, err := w.br.Discard(n); err != nil {
		return w.fail(died(err))
	}
	return nil
}

// died is the error of a failed read from or write to the worker: a kill stays a kill.
func died(err error) error {
	if errors.Is(err, errKill) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrWorkerDied, err)
}

// readBlock reads n bytes of a frame; the slice is valid until the next read from the worker.
func (w *worker) readBlock(n int) ([]byte, error) {
	if n <= w.br.Size() {
		b, err := w.br.Peek(n)
		if err != nil {
			return nil, err
		}
		w.br.Discard(n)
		return b, nil
	}
	b := make([]byte, n)
	_, err := io.ReadFull(w.br, b)
	return b, err
}

// copyOut passes n body bytes from the worker to the running call's ResponseWriter through
// the read buffer, a buffer at a time. It stops at the first write error (werr), leaving the
// rest of the n bytes (left) to be consumed; err is a failed read from the worker.
func (w *worker) copyOut(n int) (left int, werr, err error) {
	for n > 0 {
		chunk := min(n, w.br.Size())
		b, err := w.br.Peek(chunk)
		if err != nil {
			return n, nil, died(err)
		}
		if w.cur == nil { // detached while reading (onWake)
			return n, nil, nil
		}
		_, werr := w.cur.rw.Write(b)
		w.br.Discard(chunk)
		n -= chunk
		if werr != nil {
			return n, werr, nil
		}
	}
	return 0, nil, nil
}

// sendBody answers a READ: up to want bytes of body in one BODY frame, EOF flagged when the
// body is over, EOF|ERROR when it failed (the web server aborted, or the request was
// cancelled: the app's read raises).
func (w *worker) sendBody(want int) (eof bool, err error) {
	want = min(want, maxRead)
	if cap(w.wbuf) < frameHeaderLen+want {
		w.wbuf = make([]byte, frameHeaderLen+max(want, 64<<10))
	}
	buf := w.wbuf[:frameHeaderLen+want]
	n := 0
	flags := uint8(0)
	var body io.Reader
	if w.cur != nil {
		body = w.cur.req.Body
	}
	switch {
	case w.stopped:
		flags = flagEOF | flagError
	case body == nil || want == 0:
		flags = flagEOF
	}
	if flags == 0 {
		if d, ok := body.(interface{ SetReadDeadline(time.Time) error }); ok {
			d.SetReadDeadline(earliest(w.softAt, w.killAt))
		}
	}
	// At least one byte or the end; a single Read returns what arrived without waiting again.
	for flags == 0 && n == 0 {
		var rerr error
		n, rerr = body.Read(buf[frameHeaderLen:])
		switch {
		case rerr == io.EOF:
			flags = flagEOF
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			// A stalled upload: the request's deadlines apply while the gateway waits for it.
			// Past --timeout the app is not at fault: it is stopped, with its grace period.
			if !w.killAt.IsZero() && !time.Now().Before(w.killAt) {
				w.stop(reasonAborted, fmt.Errorf("%w after %v: the request body stalled", ErrTimeout, time.Since(w.startedAt).Round(time.Millisecond)))
			} else if err := w.onWake(); err != nil {
				return false, err
			}
			if w.stopped {
				n, flags = 0, flagEOF|flagError
			}
		case rerr != nil:
			flags = flagEOF | flagError
		}
	}
	putFrameHeader(buf, n, frameBody, flags)
	w.conn.SetWriteDeadline(earliest(w.killAt, time.Now().Add(w.pool.opts.QueueTimeout)))
	_, err = w.conn.Write(buf[:frameHeaderLen+n])
	return flags&flagEOF != 0, err
}
