//go:build linux

// exchange.go: one request's frames as the channel's owner reads them: START, DATA and READ
// until END or ABORTED, the response passed on, the body sent in answer to READ.

package pyrunner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// drainLimit bounds what the gateway reads and throws away from a request it has stopped,
// before it prefers to kill and replace the worker.
const drainLimit = 8 << 20

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
