//go:build linux

// call.go: Do, and a call: one request on its way through the pool (in the wait queue, in a
// worker's inbox, running), with the one verdict it ends with.

package pyrunner

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors of a request, wrapped in *ExchangeError when a worker was involved.
var (
	// ErrWorkerDied: the worker's channel ended or broke in the middle of the request.
	ErrWorkerDied = errors.New("worker died")
	// ErrAppFailed: the app raised after the response had started.
	ErrAppFailed = errors.New("app failed after the response started")
	// ErrBadHeader: the app's status or headers cannot be sent (invalid, or an injection attempt).
	ErrBadHeader = errors.New("invalid response header")
	// ErrTimeout: the request ran past Options.Timeout (the worker was killed) or
	// Options.SoftTimeout (the app was interrupted and the worker kept).
	ErrTimeout = errors.New("request timed out")
	// ErrCanceled: the request was cancelled (its context ended) after a worker took it.
	ErrCanceled = errors.New("request cancelled")
)

// ExchangeError reports a request that did not complete normally.
type ExchangeError struct {
	// Started is true when WriteHeader had been called: the response can only be cut short.
	Started bool
	PID     int
	Err     error
}

func (e *ExchangeError) Error() string {
	return fmt.Sprintf("worker pid %d: %v", e.PID, e.Err)
}

func (e *ExchangeError) Unwrap() error { return e.Err }

// callStage is where a call is. Transitions: queued → inbox under Pool.mu and the worker's
// mu together; the later ones under the worker's mu.
//
//	queued   in the pool's wait queue
//	inbox    in a worker's inbox, its REQUEST not written yet
//	writing  its REQUEST is being written ahead (a withdrawal waits for the write)
//	written  its REQUEST is in the worker's pipe, behind the request the worker runs
//	running  the worker runs it (or will next: the one before it has ended)
//	ended    its verdict is sent; nobody touches it any more
type callStage uint8

const (
	stageQueued callStage = iota
	stageInbox
	stageWriting
	stageWritten
	stageRunning
	stageEnded
)

// call is a request handed to the pool. Do owns it until it is handed to a worker; from then
// the worker's owner goroutine uses req and rw until it sends the verdict on done, after
// which only Do does. A call is embedded in its Request, which the caller reuses for its
// next request: whoever sends the verdict first drops every reference the pool and the
// worker's inbox hold to it.
type call struct {
	req     *Request
	rw      ResponseWriter
	done    chan error // buffered: the verdict, sent once
	arrived time.Time
	inline  bool // the body is all in the REQUEST frame: it may be sent ahead

	queued bool // in the pool's wait queue; guarded by Pool.mu
	// Guarded as callStage says.
	stage   callStage
	w       *worker // set under Pool.mu when handed to a worker
	cancel  error   // asked by Do while running: the owner acts on it at its next wake-up
	retries int     // times the worker it was sent ahead to was lost before its turn
}

// maxAheadRetries bounds how often one request goes back to the pool because the workers it
// was sent ahead to were lost before its turn.
const maxAheadRetries = 3

// Do runs req on a worker and passes the response to rw. It waits for a free worker in the
// bounded queue (ErrQueueFull, ErrQueueTimeout). An error from rw (the web server went away)
// stops the output. When ctx ends, the request is withdrawn if it has not started, and
// otherwise the worker is told to stop it (the app's iterable is closed, an app stuck in a
// call is interrupted); Do returns as soon as the request no longer uses rw. A request past
// Options.Timeout or Options.SoftTimeout fails with an *ExchangeError wrapping ErrTimeout.
//
// req and rw are not used after Do returns.
func (p *Pool) Do(ctx context.Context, req *Request, rw ResponseWriter) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	c := req.newCall(rw)
	waiting, err := p.dispatch(c)
	if err != nil {
		return err
	}
	var queueTimeout <-chan time.Time
	if waiting {
		t := time.NewTimer(time.Until(c.arrived.Add(p.opts.QueueTimeout)))
		defer t.Stop()
		queueTimeout = t.C
	}
	ctxDone := ctx.Done()
	for {
		select {
		case err := <-c.done:
			return err
		case <-ctxDone:
			ctxDone = nil
			if ended, err := p.withdraw(c, fmt.Errorf("%w: %w", ErrCanceled, context.Cause(ctx))); ended {
				return err
			}
		case <-queueTimeout:
			queueTimeout = nil
			if ended, err := p.withdraw(c, ErrQueueTimeout); ended {
				return err
			}
		}
	}
}

// newCall readies the call embedded in req (a Request serves one Do at a time).
func (r *Request) newCall(rw ResponseWriter) *call {
	c := &r.c
	done := c.done
	if done == nil {
		done = make(chan error, 1)
	}
	*c = call{req: r, rw: rw, done: done, arrived: time.Now(), inline: r.Body == nil}
	r.WorkerPID, r.Started = 0, time.Time{}
	return c
}

// withdraw takes c back because of cause: out of the queue or an inbox, or, written ahead
// into a pipe, marked cancelled on the worker's board so that it never starts. It reports
// whether c ended so (then err is its verdict); otherwise c is running and its worker was
// told, unless cause is ErrQueueTimeout, which no longer applies to a running request.
func (p *Pool) withdraw(c *call, cause error) (bool, error) {
	p.mu.Lock()
	if c.queued {
		p.removeWaiterLocked(c)
		c.queued = false
		p.mu.Unlock()
		return true, cause
	}
	w := c.w
	p.mu.Unlock()
	return w.withdraw(c, cause)
}

// finish sends c's verdict; nothing touches c afterwards but Do.
func (c *call) finish(err error) {
	c.done <- err
}
