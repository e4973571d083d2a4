// This file holds the read loop of a connection: it reads the records, alone
// owns the map of requests, and feeds each request its params and body.

package fcgi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

const (
	readBufSize = 64 << 10

	// minSweep is the request map size at which finished requests are first
	// swept out of it. Web servers reuse small ids, so it is seldom reached.
	minSweep = 64
)

var readerPool sync.Pool

func (c *conn) readLoop() error {
	var h header
	for {
		if err := c.readHeader(&h); err != nil {
			return err
		}
		if err := c.handleRecord(&h); err != nil {
			return err
		}
		// "requires receivers to interpret the paddingLength and skip the
		// paddingData"
		if err := c.discard(int(h.paddingLen)); err != nil {
			return err
		}
	}
}

// beforeRead is called before any read that may need a syscall: handlers
// whose params are complete start now, with every record that was already
// buffered delivered.
func (c *conn) beforeRead() {
	if len(c.pending) > 0 {
		c.launchPending()
	}
}

func (c *conn) readHeader(h *header) error {
	if c.br.Buffered() < headerLen {
		c.beforeRead()
		// Between records the connection may idle; inside a header it may
		// not stall.
		if c.br.Buffered() == 0 {
			c.armStall(false)
			if _, err := c.br.Peek(1); err != nil {
				if err == io.EOF {
					return io.EOF
				}
				return c.readErr(err)
			}
		}
		if c.br.Buffered() < headerLen {
			c.armStall(true)
		}
	}
	b, err := c.br.Peek(headerLen)
	if err != nil {
		if len(b) == 0 && err == io.EOF {
			return io.EOF
		}
		return c.readErr(err)
	}
	h.decode(b)
	c.br.Discard(headerLen)
	if h.version != version1 {
		return fmt.Errorf("%w: unsupported version %d", ErrProtocol, h.version)
	}
	return nil
}

func (c *conn) readErr(err error) error {
	if err == io.EOF {
		return fmt.Errorf("%w: truncated record: %w", ErrProtocol, io.ErrUnexpectedEOF)
	}
	if c.deadlineSet && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: nothing received for %v", ErrStalled, c.srv.stallTimeout())
	}
	return fmt.Errorf("fcgi: read: %w", err)
}

// armStall is called before a read that may block: inside a record (mid)
// the read gets a deadline StallTimeout from now; between records any
// deadline is lifted. Connections without deadlines are not timed.
func (c *conn) armStall(mid bool) {
	if !mid && !c.deadlineSet {
		return
	}
	d, ok := c.rwc.(interface{ SetReadDeadline(time.Time) error })
	timeout := c.srv.stallTimeout()
	if !ok || timeout < 0 {
		return
	}
	var t time.Time
	if mid {
		t = time.Now().Add(timeout)
	}
	c.dmu.Lock()
	if !c.lingering {
		d.SetReadDeadline(t)
		c.deadlineSet = mid
	}
	c.dmu.Unlock()
}

// next returns up to n bytes, at least one, from the read buffer, reading
// the connection only if nothing is buffered. The caller consumes them with
// c.br.Discard before the next read.
func (c *conn) next(n int) ([]byte, error) {
	if c.br.Buffered() == 0 {
		c.beforeRead()
		c.armStall(true)
		if _, err := c.br.Peek(1); err != nil {
			return nil, c.readErr(err)
		}
	}
	b, _ := c.br.Peek(min(n, c.br.Buffered()))
	return b, nil
}

func (c *conn) discard(n int) error {
	for n > 0 {
		b, err := c.next(n)
		if err != nil {
			return err
		}
		c.br.Discard(len(b))
		n -= len(b)
	}
	return nil
}

func (c *conn) readFull(dst []byte) error {
	for len(dst) > 0 {
		b, err := c.next(len(dst))
		if err != nil {
			return err
		}
		m := copy(dst, b)
		c.br.Discard(m)
		dst = dst[m:]
	}
	return nil
}

// handleRecord consumes the content of the record whose header is h.
func (c *conn) handleRecord(h *header) error {
	n := int(h.contentLen)
	if c.draining {
		return c.discard(n)
	}
	if h.id == nullRequestID {
		if h.typ == typeGetValues {
			return c.getValues(n)
		}
		return c.unknownType(h.typ, n)
	}
	switch h.typ {
	case typeBeginRequest:
		return c.beginRequest(h.id, n)
	case typeAbortRequest:
		return c.abortRequest(h.id, n)
	case typeParams:
		return c.params(h.id, n)
	case typeStdin:
		return c.stdin(h.id, n)
	case typeData:
		// Only the Filter role, which is refused, has a data stream.
		return c.discard(n)
	}
	return c.unknownType(h.typ, n)
}

// lookup returns the request of id; for an inactive id, ignoreAll: "While a request ID R is
// inactive, the application ignores records with requestId == R, except for
// FCGI_BEGIN_REQUEST records" (section 3.3).
func (c *conn) lookup(id uint16) *request {
	if req, ok := c.reqs[id]; ok {
		return req
	}
	return ignoreAll
}

func (c *conn) beginRequest(id uint16, n int) error {
	if n != beginBodyLen {
		return fmt.Errorf("%w: FCGI_BEGIN_REQUEST of %d bytes", ErrProtocol, n)
	}
	var b [beginBodyLen]byte
	if err := c.readFull(b[:]); err != nil {
		return err
	}
	role := Role(binary.BigEndian.Uint16(b[:]))
	keepConn := b[2]&flagKeepConn != 0

	if old, ok := c.reqs[id]; ok && old != ignoreStdin && old != ignoreAll && !old.done.Load() {
		return fmt.Errorf("%w: FCGI_BEGIN_REQUEST for active request id %d", ErrProtocol, id)
	}
	if admitted, err := c.admit(id, role, keepConn); !admitted {
		return err
	}
	if len(c.reqs) >= c.sweepAt {
		c.sweep()
	}
	if c.open.Load() > 1 {
		c.mpxPeer = true
	}
	req := newRequest(c, id, role, keepConn)
	req.body.spoolDir, req.body.spoolMax = c.srv.SpoolDir, c.srv.maxSpool()
	c.reqs[id] = req
	return nil
}

// sweep drops finished requests from the map. One whose body is still
// arriving becomes ignoreStdin, so the rest is discarded.
func (c *conn) sweep() {
	for id, req := range c.reqs {
		if req == ignoreStdin || req == ignoreAll || !req.done.Load() {
			continue
		}
		if req.stdinDone {
			delete(c.reqs, id)
		} else {
			c.reqs[id] = ignoreStdin
		}
	}
	c.sweepAt = max(minSweep, 2*len(c.reqs))
}

// forget makes id inactive for a request the read loop has ended: the rest
// of its body, if any, is discarded.
func (c *conn) forget(req *request) {
	if req.stdinDone {
		delete(c.reqs, req.r.ID)
	} else {
		c.reqs[req.r.ID] = ignoreStdin
	}
}

func (c *conn) abortRequest(id uint16, n int) error {
	if err := c.discard(n); err != nil {
		return err
	}
	req, ok := c.reqs[id]
	if !ok || req == ignoreStdin || req == ignoreAll || req.done.Load() {
		// The abort crossed our FCGI_END_REQUEST on the wire.
		return nil
	}
	if req.launched {
		if !req.w.endClaimed.CompareAndSwap(false, true) {
			return nil // the handler is sending FCGI_END_REQUEST itself
		}
		// "the application responds as soon as possible with
		// {FCGI_END_REQUEST, R, {FCGI_REQUEST_COMPLETE, appStatus}}": now,
		// not when the handler notices. Under the write lock, so that no
		// output of the handler follows it. The handler still counts
		// against the limits until it returns: it still holds what it uses.
		c.wmu.Lock()
		req.w.webAborted.Store(true)
		c.wmu.Unlock()
		req.body.fail(ErrRequestAborted)
		req.r.cancelCtx(ErrRequestAborted)
		c.forget(req)
		if err := c.write(appendEndRequest(c.small[:0], id, 0, statusRequestComplete)); err != nil {
			return err
		}
		if !req.r.KeepConn {
			c.drain()
		}
		return nil
	}
	// No handler yet: "After receiving {FCGI_ABORT_REQUEST, R}, the
	// application responds as soon as possible with {FCGI_END_REQUEST, R,
	// {FCGI_REQUEST_COMPLETE, appStatus}}."
	c.drop(req)
	c.deactivate()
	err := c.write(appendEndRequest(c.small[:0], id, 0, statusRequestComplete))
	c.release()
	if err != nil {
		return err
	}
	if !req.r.KeepConn {
		return errCloseConn
	}
	return nil
}

// drop ends a request the read loop answers itself: its handler never runs.
// The caller counts it out (deactivate, release).
func (c *conn) drop(req *request) {
	req.dropped = true
	req.dropParams()
	req.body.close()
	c.forget(req)
}

func (c *conn) params(id uint16, n int) error {
	req := c.lookup(id)
	if req == ignoreStdin || req == ignoreAll {
		return c.discard(n)
	}
	if req.paramsDone {
		return fmt.Errorf("%w: FCGI_PARAMS after the end of the stream (request %d)", ErrProtocol, id)
	}
	if n == 0 {
		return c.endParams(req)
	}
	if req.pb == nil {
		req.pb = getParamBuf()
	}
	if max := c.srv.maxParamsSize(); len(req.pb.b)+n > max {
		return c.paramsTooLarge(req, n, max)
	}
	for n > 0 {
		b, err := c.next(n)
		if err != nil {
			return err
		}
		req.pb.b = append(req.pb.b, b...)
		c.br.Discard(len(b))
		n -= len(b)
	}
	return nil
}

// endParams decodes the params and queues the handler: it starts before
// the next read that needs a syscall.
func (c *conn) endParams(req *request) error {
	req.paramsDone = true
	if pb := req.pb; pb != nil {
		req.pb = nil
		if err := req.r.Params.parse(pb.b, pb.idx); err != nil {
			putParamBuf(pb)
			return fmt.Errorf("%w: params of request %d: %w", ErrProtocol, req.r.ID, err)
		}
		pb.idx = req.r.Params.idx // keep the grown index with its buffer
		req.r.Params.pb = pb
	}
	if req.r.Role == RoleAuthorizer {
		// An authorizer decides on the request's params alone, and Apache
		// mod_authnz_fcgi sends no FCGI_STDIN for it at all: the body is
		// complete, and empty, once the params end. An FCGI_STDIN stream that
		// comes all the same is discarded.
		req.stdinDone = true
		req.body.setEOF()
	}
	c.pending = append(c.pending, req)
	return nil
}

func (c *conn) stdin(id uint16, n int) error {
	req := c.lookup(id)
	switch {
	case req == ignoreAll:
		return c.discard(n)
	case req == ignoreStdin:
		if n == 0 {
			delete(c.reqs, id)
		}
		return c.discard(n)
	case !req.paramsDone:
		return fmt.Errorf("%w: FCGI_STDIN before the end of FCGI_PARAMS (request %d)", ErrProtocol, id)
	case req.stdinDone:
		return c.discard(n) // a second end of stream: harmless
	}
	if n == 0 {
		req.stdinDone = true
		req.body.setEOF()
		if req.done.Load() {
			delete(c.reqs, id)
		}
		return nil
	}
	for n > 0 {
		b, err := c.next(n)
		if err != nil {
			return err
		}
		m, err := req.body.write(b)
		c.br.Discard(m)
		n -= m
		if err != nil {
			// The spool limit bit, or the spool file failed: the request's
			// body is failed and the rest of it is discarded.
			req.r.cancelCtx(err)
			c.srv.refused(c.remote, fmt.Errorf("request %d: %w", id, err))
			continue
		}
		if m < len(b) {
			if c.mpxPeer || c.open.Load() > 1 {
				// Other requests share the connection, or may come behind
				// this body: the overflow goes to a temp file so that they
				// are not held up.
				req.body.startSpool()
				continue
			}
			// A web server that sends one request at a time per connection
			// (nginx, Apache, Caddy): its handler must run to drain the
			// body, and the web server waits meanwhile (backpressure).
			c.launchPending()
			if !req.body.waitRoom(c) {
				return errCloseConn
			}
		}
	}
	return nil
}
