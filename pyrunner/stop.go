//go:build linux

// stop.go: the owner's deadlines and cancellation: the read deadline that wakes it (its
// request's time limits, a poke from Do), and stopping the running request (the cancel board,
// SIGUSR2, the grace period before the worker is killed).

package pyrunner

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Deadlines of cancellation: after the app is told to stop (the cancel board and SIGUSR2),
// SIGUSR2 is sent again every interruptResend until the request ends, and the worker is
// killed if it has not ended within Options.CancelGrace.
const interruptResend = 200 * time.Millisecond

// errKill is what onWake returns when the worker must be killed: the running request passed
// Options.Timeout, or did not stop within Options.CancelGrace.
var errKill = errors.New("kill the worker")

// past is a read deadline that has passed: setting it wakes an owner blocked in a read.
var past = time.Unix(1, 0)

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
		w.log.Warn("request passed --soft-timeout: interrupting the app", "soft_timeout", w.pool.opts.SoftTimeout.String(), "request_id", w.requestID(), "uri", w.uri())
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
	w.stoppedURI, w.stoppedID = w.uri(), w.requestID() // for the log line if it has to be killed, once detached
	if reason == reasonAborted && err != nil {
		w.log.Debug("request cancelled: stopping the app", "request_id", w.stoppedID, "uri", w.stoppedURI, "cause", err)
	}
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
