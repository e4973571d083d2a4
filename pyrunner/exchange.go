// exchange.go: one request's conversation with a worker: REQUEST out, then START/DATA/READ
// frames in until the frame marked END.

package pyrunner

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors of an exchange, wrapped in *ExchangeError.
var (
	// ErrWorkerDied: the worker's channel ended or broke in the middle of the request.
	ErrWorkerDied = errors.New("worker died")
	// ErrAppFailed: the app raised after the response had started.
	ErrAppFailed = errors.New("app failed after the response started")
	// ErrBadHeader: the app's status or headers cannot be sent (invalid, or an injection attempt).
	ErrBadHeader = errors.New("invalid response header")
	// ErrTimeout: the request ran past Options.Timeout; the worker was killed.
	ErrTimeout = errors.New("request timed out")
)

// died is the error of a failed read from or write to the worker: a timeout stays a timeout.
func died(err error) error {
	if errors.Is(err, ErrTimeout) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrWorkerDied, err)
}

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

// drainLimit bounds what the gateway reads and throws away from a worker whose client is gone,
// before it prefers to kill and replace the worker.
const drainLimit = 8 << 20

// Do runs req on a worker and passes the response to w. It waits for a free worker in the
// bounded queue (ErrQueueFull, ErrQueueTimeout). An error from w (the web server went away)
// stops the output; the worker is still brought back to a clean state or replaced. A request
// past Options.Timeout fails with an *ExchangeError wrapping ErrTimeout: the worker's Python
// stack is logged and the worker is killed.
//
// A request may be sent ahead to a busy worker (ahead.go): then it is written at once and
// waits for the request ahead of it to end.
func (p *Pool) Do(ctx context.Context, req *Request, w ResponseWriter) error {
	for attempt := 0; ; attempt++ {
		wk, turn, err := p.acquire(ctx, req)
		if err != nil {
			return err
		}
		if turn == nil {
			return p.serve(wk, req, w, false)
		}
		werr := turn.write(wk, req)
		err, waited := p.waitTurn(turn)
		if !waited {
			// The request ahead is still running after QueueTimeout. Ours cannot be taken
			// back from the pipe: it runs when its turn comes, with nobody to answer.
			p.abandonAhead(wk, turn, req)
			return &ExchangeError{PID: wk.p.pid, Err: fmt.Errorf("%w: sent ahead, still behind a request running after %v", ErrTimeout, p.opts.QueueTimeout)}
		}
		if err != nil {
			// The worker failed before our turn: we never started.
			if attempt < maxAheadRetries {
				continue
			}
			return &ExchangeError{PID: wk.p.pid, Err: fmt.Errorf("%w: the workers it was sent ahead to failed", ErrWorkerDied)}
		}
		if werr != nil {
			// Our turn, on a worker whose channel broke as we wrote: it is lost, we did not start.
			p.discard(wk, false)
			if attempt < maxAheadRetries {
				continue
			}
			return &ExchangeError{PID: wk.p.pid, Err: fmt.Errorf("%w: send request: %v", ErrWorkerDied, werr)}
		}
		return p.serve(wk, req, w, true)
	}
}

// serve runs req on wk, which it holds, and gives wk back (or discards it). sent says req's
// REQUEST frame is already written (it was sent ahead).
func (p *Pool) serve(wk *worker, req *Request, w ResponseWriter, sent bool) error {
	req.WorkerPID = wk.p.pid
	if p.opts.TrackRequests {
		wk.begin(req) // status.go
	}
	healthy, err := wk.exchange(req, w, sent)
	if p.opts.TrackRequests {
		wk.end()
	}
	if healthy {
		p.release(wk)
		return err
	}
	p.failAhead(wk)
	if errors.Is(err, ErrTimeout) {
		stack := wk.p.dumpStack()
		wk.log.Error("request timed out: killing the worker; its Python stack follows",
			"timeout", p.opts.Timeout, "uri", req.lookup("REQUEST_URI"), "stack", stack)
	}
	p.discard(wk, !errors.Is(err, ErrWorkerDied))
	return err
}

// exchange runs one request; sent says its REQUEST is already written. healthy reports
// whether the worker can take another.
func (wk *worker) exchange(req *Request, w ResponseWriter, sent bool) (healthy bool, err error) {
	if o := &wk.pool.opts; o.Timeout > 0 || o.SlowTimeout > 0 {
		wk.armDeadline(req, o.Timeout, o.SlowTimeout)
	}
	if !sent {
		if _, err := wk.conn.Write(req.finish()); err != nil {
			return false, &ExchangeError{PID: wk.p.pid, Err: fmt.Errorf("%w: send request: %v", ErrWorkerDied, err)}
		}
	}
	wk.pool.markAheadable(wk, req)
	bodyEOF := req.bodyEOF
	inline := bodyEOF // the whole body went with REQUEST: the runner never asks for more
	started := false
	var sinkErr error // first error from w: the rest of the response is drained, not sent
	drained := 0
	fail := func(e error) (bool, error) {
		return false, &ExchangeError{Started: started, PID: wk.p.pid, Err: e}
	}
	var hdr [frameHeaderLen]byte
	for {
		if _, err := io.ReadFull(wk.br, hdr[:]); err != nil {
			return fail(died(err))
		}
		h, err := parseFrameHeader(hdr[:])
		if err != nil {
			return fail(err)
		}
		n := int(h.length)
		switch h.typ {
		case frameStart:
			if started {
				return fail(fmt.Errorf("%w: second START", errProtocol))
			}
			if n < 4 {
				return fail(fmt.Errorf("%w: short START", errProtocol))
			}
			var lb [4]byte
			if _, err := io.ReadFull(wk.br, lb[:]); err != nil {
				return fail(died(err))
			}
			hl := int(binary.LittleEndian.Uint32(lb[:]))
			if hl > maxHeaderBlock || hl > n-4 {
				return fail(fmt.Errorf("%w: header block of %d bytes", errProtocol, hl))
			}
			block, err := wk.readBlock(hl)
			if err != nil {
				return fail(died(err))
			}
			status, header, perr := parseHeaderBlock(block)
			if perr != nil {
				// Nothing has reached w: the caller answers 500. Drain the worker to END.
				if err := wk.skip(n - 4 - hl); err != nil {
					return fail(died(err))
				}
				if h.flags&flagEnd == 0 {
					if ok, err := wk.drainToEnd(inline); !ok {
						return fail(err)
					}
				}
				return true, &ExchangeError{PID: wk.p.pid, Err: fmt.Errorf("%w: %v", ErrBadHeader, perr)}
			}
			started = true
			sinkErr = w.WriteHeader(status, header)
			n -= 4 + hl
		case frameData:
			if !started {
				return fail(fmt.Errorf("%w: DATA before START", errProtocol))
			}
		case frameRead:
			if n != 4 {
				return fail(fmt.Errorf("%w: READ of %d bytes", errProtocol, n))
			}
			var lb [4]byte
			if _, err := io.ReadFull(wk.br, lb[:]); err != nil {
				return fail(died(err))
			}
			want := int(binary.LittleEndian.Uint32(lb[:]))
			if inline {
				// The runner sends no READ for a body sent whole; and a request sent ahead
				// may be writing to the worker's pipe now.
				return fail(fmt.Errorf("%w: READ for a body sent whole", errProtocol))
			}
			if bodyEOF {
				want = 0
			}
			eof, err := wk.sendBody(req.Body, want)
			if err != nil {
				return fail(fmt.Errorf("%w: send body: %v", ErrWorkerDied, err))
			}
			bodyEOF = bodyEOF || eof
			continue
		default:
			return fail(fmt.Errorf("%w: unexpected %v frame", errProtocol, h.typ))
		}

		// Body bytes of START or DATA.
		if sinkErr == nil {
			sinkErr = wk.copyOut(w, n)
		} else {
			drained += n
			if drained > drainLimit {
				return fail(fmt.Errorf("client gone and the app keeps sending: %w", sinkErr))
			}
			if err := wk.skip(n); err != nil {
				return fail(died(err))
			}
		}
		if h.flags&flagEnd != 0 {
			if h.flags&flagError != 0 {
				return true, &ExchangeError{Started: true, PID: wk.p.pid, Err: ErrAppFailed}
			}
			return true, sinkErr
		}
		if sinkErr == nil {
			sinkErr = w.Flush()
		}
	}
}

// readBlock reads n bytes of a frame; the slice is valid until the next read from the worker.
func (wk *worker) readBlock(n int) ([]byte, error) {
	if n <= wk.br.Size() {
		b, err := wk.br.Peek(n)
		if err != nil {
			return nil, err
		}
		wk.br.Discard(n)
		return b, nil
	}
	b := make([]byte, n)
	_, err := io.ReadFull(wk.br, b)
	return b, err
}

// copyOut passes n body bytes from the worker to w through the read buffer, a buffer at a time.
// On a write error the rest of the n bytes is still consumed from the worker.
func (wk *worker) copyOut(w ResponseWriter, n int) error {
	for n > 0 {
		chunk := min(n, wk.br.Size())
		b, err := wk.br.Peek(chunk)
		if err != nil {
			return died(err)
		}
		_, werr := w.Write(b)
		wk.br.Discard(chunk)
		n -= chunk
		if werr != nil {
			if err := wk.skip(n); err != nil {
				return died(err)
			}
			return werr
		}
	}
	return nil
}

func (wk *worker) skip(n int) error {
	_, err := wk.br.Discard(n)
	return err
}

// sendBody answers a READ: up to want bytes of body in one BODY frame, EOF flagged when the
// body is over, EOF|ERROR when the web server's side of it failed (the app's read raises).
func (wk *worker) sendBody(body io.Reader, want int) (eof bool, err error) {
	want = min(want, maxRead)
	if cap(wk.wbuf) < frameHeaderLen+want {
		wk.wbuf = make([]byte, frameHeaderLen+max(want, 64<<10))
	}
	buf := wk.wbuf[:frameHeaderLen+want]
	n := 0
	flags := uint8(0)
	if body == nil || want == 0 {
		flags = flagEOF
	}
	// At least one byte or the end; a single Read returns what arrived without waiting again.
	for flags == 0 && n == 0 {
		var rerr error
		n, rerr = body.Read(buf[frameHeaderLen:])
		switch {
		case rerr == io.EOF:
			flags = flagEOF
		case rerr != nil:
			flags = flagEOF | flagError
		}
	}
	putFrameHeader(buf, n, frameBody, flags)
	_, err = wk.conn.Write(buf[:frameHeaderLen+n])
	return flags&flagEOF != 0, err
}

// drainToEnd reads and discards the rest of a response, answering READs with EOF (a READ
// for a body sent whole is a protocol error, as in exchange).
func (wk *worker) drainToEnd(inline bool) (bool, error) {
	var hdr [frameHeaderLen]byte
	total := 0
	for {
		if _, err := io.ReadFull(wk.br, hdr[:]); err != nil {
			return false, died(err)
		}
		h, err := parseFrameHeader(hdr[:])
		if err != nil {
			return false, err
		}
		switch h.typ {
		case frameData:
			total += int(h.length)
			if total > drainLimit {
				return false, fmt.Errorf("response dropped and the app keeps sending")
			}
			if err := wk.skip(int(h.length)); err != nil {
				return false, died(err)
			}
			if h.flags&flagEnd != 0 {
				return true, nil
			}
		case frameRead:
			if inline {
				return false, fmt.Errorf("%w: READ for a body sent whole", errProtocol)
			}
			if err := wk.skip(int(h.length)); err != nil {
				return false, died(err)
			}
			if _, err := wk.sendBody(nil, 0); err != nil {
				return false, died(err)
			}
		default:
			return false, fmt.Errorf("%w: unexpected %v frame", errProtocol, h.typ)
		}
	}
}
