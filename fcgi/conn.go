// This file holds one transport connection: its read loop, which alone owns
// the map of requests, the handler goroutines it launches, and the
// mutex-guarded writes that all requests on the connection share.

package fcgi

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrProtocol is wrapped by the errors passed to Server.ConnError when the
// web server broke the FastCGI protocol: a bad
// version, a truncated record, a record for a request that was never begun,
// a malformed name-value pair.
var ErrProtocol = errors.New("fcgi: protocol error")

// errCloseConn ends the read loop without an error: FCGI_KEEP_CONN was not
// set, or the connection was closed on purpose.
var errCloseConn = errors.New("fcgi: connection closed by server")

const (
	readBufSize = 64 << 10

	// minSweep is the request map size at which finished requests are first
	// swept out of it. Web servers reuse small ids, so it is seldom reached.
	minSweep = 64

	// lingerTimeout bounds how long a connection closed without
	// FCGI_KEEP_CONN keeps reading a body nobody wants.
	lingerTimeout = 5 * time.Second

	// idleClosed marks inflight once closeIfIdle has closed the connection.
	idleClosed = math.MinInt32 / 2
)

var readerPool sync.Pool

// conn is one transport connection from the web server.
type conn struct {
	srv    *Server
	rwc    io.ReadWriteCloser
	remote net.Addr

	// Owned by the read loop.
	br      *bufio.Reader
	reqs    map[uint16]*request
	pending []*request // params complete, handler not launched yet
	// spare takes a request to the handler goroutine that offered itself (spareReady) for the
	// connection's next one (handlerLoop); closed when the read loop ends. One slot: at most
	// one offer is outstanding, and the goroutine behind it is on its way to receive.
	spare   chan *request
	sweepAt int
	small   [32]byte // scratch for the records the read loop sends

	// overloaded: the connection came over MaxConns; set before serving.
	overloaded bool
	// draining: the connection is being closed after a refusal; the read
	// loop only discards what still arrives.
	draining bool
	// deadlineSet: a stall deadline is armed on rwc.
	deadlineSet bool
	// mpxPeer: the web server multiplexes on this connection, or may: it
	// has had two requests in progress at once, or asked FCGI_MPXS_CONNS.
	// A full body is then spooled rather than paused (see Body).
	mpxPeer bool

	// dmu orders the read loop's stall deadlines with the linger deadline
	// closeAfterResponse sets from a handler goroutine.
	dmu       sync.Mutex
	lingering bool

	wmu sync.Mutex // serializes writes to rwc

	dead      atomic.Bool // no more writes: closed, broken, or half-closed
	closeOnce sync.Once
	waiting   atomic.Pointer[Body] // body the read loop waits on for room
	inflight  atomic.Int32         // requests begun and not yet ended
	// active counts the requests in progress, like inflight, but drops
	// before FCGI_END_REQUEST is written: once the web server has the end
	// of a request, its next one never finds the old one counted.
	active atomic.Int32
	refs   atomic.Int32 // the read loop and running handlers
	// spareReady: a handler goroutine will take the next request from spare.
	spareReady atomic.Bool
	reported   atomic.Bool
	done       chan struct{} // closed when refs drops to zero
}

func newConn(s *Server, rwc io.ReadWriteCloser, remote net.Addr) *conn {
	c := &conn{
		srv:     s,
		rwc:     rwc,
		remote:  remote,
		reqs:    make(map[uint16]*request),
		spare:   make(chan *request, 1),
		sweepAt: minSweep,
		done:    make(chan struct{}),
	}
	c.refs.Store(1)
	return c
}

// serve runs the read loop, then tears the connection down.
func (c *conn) serve() {
	if v := readerPool.Get(); v != nil {
		c.br = v.(*bufio.Reader)
		c.br.Reset(c.rwc)
	} else {
		c.br = bufio.NewReaderSize(c.rwc, readBufSize)
	}
	err := c.readLoop()
	close(c.spare) // no more requests: a waiting handler goroutine ends

	// An error after the connection was closed on purpose is the echo of
	// that close; EOF is the web server closing, which is its right.
	if !c.dead.Load() && err != io.EOF && err != errCloseConn {
		c.report(err)
	}
	c.close()
	for _, req := range c.reqs {
		switch {
		case req == ignoreStdin || req == ignoreAll:
		case !req.launched:
			req.dropParams()
			req.body.close()
			c.deactivate() // counted in, never launched to count out
		default:
			req.body.fail(ErrConnClosed)
			req.r.cancelCtx(ErrConnClosed)
		}
	}
	clear(c.reqs)
	clear(c.pending)
	c.pending = nil
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.br = nil
	c.release()
}

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

func (c *conn) launchPending() {
	for i, req := range c.pending {
		c.pending[i] = nil
		if req.dropped {
			continue
		}
		req.launched = true
		c.refs.Add(1)
		if c.spareReady.CompareAndSwap(true, false) {
			c.spare <- req // a handler goroutine of this connection takes it (handlerLoop)
		} else {
			go c.handlerLoop(req)
		}
	}
	c.pending = c.pending[:0]
}

// handlerLoop runs req, then the connection's next request if its handler said it would take
// it (runHandler), until the read loop ends. A web server that sends one request after another
// on a connection is served by one goroutine: a new goroutine starts on a small stack and
// grows it again for every request (copying it: 3.4 % of the gateway's CPU per hello request),
// and its exit frees the grown stack.
func (c *conn) handlerLoop(req *request) {
	for c.runHandler(req) {
		var ok bool
		if req, ok = <-c.spare; !ok {
			return // the read loop ended
		}
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

// unknownType answers a record type this package does not take: "When an
// application receives a management record whose type T it does not
// understand, the application responds with {FCGI_UNKNOWN_TYPE, 0, {T}}."
// Application records of odd types get the same answer.
func (c *conn) unknownType(t recType, n int) error {
	if err := c.discard(n); err != nil {
		return err
	}
	return c.write(appendUnknownType(c.small[:0], t))
}

// getValues answers FCGI_GET_VALUES. "If the application doesn't understand
// a variable name that was included in the query, it omits that name from
// the response."
func (c *conn) getValues(n int) error {
	q := make([]byte, n)
	if err := c.readFull(q); err != nil {
		return err
	}
	out := make([]byte, headerLen, 128)
	var seen [3]bool
	for len(q) > 0 {
		off, nl, _, size, err := pairAt(q)
		if err != nil {
			return fmt.Errorf("%w: FCGI_GET_VALUES: %w", ErrProtocol, err)
		}
		name := q[off : off+int(nl)]
		q = q[size:]
		var i int
		var v int
		switch string(name) {
		case "FCGI_MAX_CONNS":
			i, v = 0, c.srv.maxConns()
		case "FCGI_MAX_REQS":
			i, v = 1, c.srv.maxReqs()
		case "FCGI_MPXS_CONNS":
			i, v = 2, 1 // requests on one connection run concurrently
			if c.srv.NoMultiplex {
				v = 0
			} else {
				c.mpxPeer = true // a client that asks may well multiplex
			}
		default:
			continue
		}
		if !seen[i] {
			seen[i] = true
			out = appendPair(out, string(name), strconv.Itoa(v))
		}
	}
	putHeader(out, typeGetValuesResult, nullRequestID, len(out)-headerLen)
	return c.write(out)
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
	switch {
	case role != RoleResponder && role != RoleAuthorizer:
		// "FCGI_UNKNOWN_ROLE: rejecting a new request. This happens when
		// the Web server has specified a role that is unknown to the
		// application." Filter is known, but not served.
		return c.refuse(id, keepConn, statusUnknownRole, fmt.Errorf("%w: %v (request %d)", ErrUnknownRole, role, id))
	case c.overloaded:
		// "FCGI_OVERLOADED: rejecting a new request. This happens when the
		// application runs out of some resource".
		return c.refuse(id, keepConn, statusOverloaded, fmt.Errorf("%w: over %d (request %d refused)", ErrTooManyConns, c.srv.maxConns(), id))
	case c.srv.NoMultiplex && c.active.Load() > 0:
		// "FCGI_CANT_MPX_CONN: rejecting a new request. This happens when a
		// Web server sends concurrent requests over one connection to an
		// application that is designed to process one request at a time per
		// connection."
		return c.refuse(id, keepConn, statusCantMultiplex, fmt.Errorf("%w: request %d while another is in progress", ErrCantMultiplex, id))
	}
	if c.srv.active.Add(1) > int32(c.srv.maxReqs()) {
		c.srv.active.Add(-1)
		return c.refuse(id, keepConn, statusOverloaded, fmt.Errorf("%w: over %d (request %d refused)", ErrTooManyRequests, c.srv.maxReqs(), id))
	}
	if len(c.reqs) >= c.sweepAt {
		c.sweep()
	}
	if c.active.Load() > 0 {
		c.mpxPeer = true
	}
	req := newRequest(c, id, role, keepConn)
	req.body.spoolDir, req.body.spoolMax = c.srv.SpoolDir, c.srv.maxSpool()
	c.reqs[id] = req
	c.inflight.Add(1)
	c.active.Add(1)
	return nil
}

// refuse answers a new request with FCGI_END_REQUEST and protocol status
// st; its other records are ignored until the id is begun again. A
// connection over MaxConns, or one whose request did not ask
// FCGI_KEEP_CONN, is closed after the answer.
func (c *conn) refuse(id uint16, keepConn bool, st protocolStatus, reason error) error {
	c.reqs[id] = ignoreAll
	c.srv.refused(c.remote, reason)
	if err := c.write(appendEndRequest(c.small[:0], id, 0, st)); err != nil {
		return err
	}
	if !keepConn || c.overloaded {
		c.drain()
	}
	return nil
}

// drain closes the connection after what was written: the read loop
// discards input until the web server closes its side.
func (c *conn) drain() {
	c.draining = true
	c.closeAfterResponse(false)
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
		if req.stdinDone {
			delete(c.reqs, id)
		} else {
			c.reqs[id] = ignoreStdin
		}
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
	req.dropped = true
	req.dropParams()
	req.body.close()
	if req.stdinDone {
		delete(c.reqs, id)
	} else {
		c.reqs[id] = ignoreStdin
	}
	c.deactivate()
	err := c.write(appendEndRequest(c.small[:0], id, 0, statusRequestComplete))
	c.endInflight()
	if err != nil {
		return err
	}
	if !req.r.KeepConn {
		return errCloseConn
	}
	return nil
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

// paramsTooLarge answers a request whose params outgrew the limit with a
// CGI 431 response of the package's own; its handler never runs and its
// remaining records are ignored.
func (c *conn) paramsTooLarge(req *request, n, limit int) error {
	if err := c.discard(n); err != nil {
		return err
	}
	id := req.r.ID
	req.dropped = true
	req.dropParams()
	req.body.close()
	c.reqs[id] = ignoreStdin
	c.srv.refused(c.remote, fmt.Errorf("%w: request %d sent more than %d bytes", ErrParamsTooLarge, id, limit))
	const msg = "431 Request Header Fields Too Large\n"
	const head = "Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
	b := appendHeader(nil, typeStdout, id, len(head)+len(msg))
	b = append(append(b, head...), msg...)
	b = appendHeader(b, typeStdout, id, 0)
	b = appendEndRequest(b, id, 0, statusRequestComplete)
	c.deactivate()
	err := c.write(b)
	c.endInflight()
	if err != nil {
		return err
	}
	if !req.r.KeepConn {
		c.drain()
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
			if c.mpxPeer || c.active.Load() > 1 {
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

// runHandler runs the handler of one request and ends the request. It reports whether it
// offered its goroutine for the connection's next request (endRequest): the caller must then
// receive from c.spare.
func (c *conn) runHandler(req *request) (offered bool) {
	ok := false
	defer func() {
		if !ok {
			// A panic, or runtime.Goexit: the response is in an unknown
			// state, so the connection goes.
			if p := recover(); p != nil {
				stack := make([]byte, 32<<10)
				stack = stack[:runtime.Stack(stack, false)]
				c.report(fmt.Errorf("fcgi: panic serving request %d: %v\n%s", req.r.ID, p, stack))
			}
			c.close()
		}
		offered = c.endRequest(req, ok)
		c.release()
	}()
	c.srv.Handler.ServeFCGI(&req.w, &req.r)
	ok = true
	return false // set by the deferred call
}

// endRequest ends the request after its handler returned; ok is false after
// a panic. It reports whether it offered the goroutine for the connection's
// next request (spareReady).
func (c *conn) endRequest(req *request, ok bool) (offered bool) {
	req.body.close()
	req.r.Params.release()
	// Inactive from here: a new FCGI_BEGIN_REQUEST may reuse the id as soon
	// as the web server has our FCGI_END_REQUEST.
	req.done.Store(true)
	c.deactivate()
	if ok {
		// Offered before the FCGI_END_REQUEST goes out, after which the web
		// server may send its next request at once: the read loop then finds
		// the offer, rather than a goroutine still finishing this request.
		offered = req.r.KeepConn && c.spareReady.CompareAndSwap(false, true)
		req.w.finish()
	} else {
		req.w.done = true
		req.w.release()
	}
	req.r.cancelCtx(context.Canceled)
	c.endInflight()
	if !req.r.KeepConn {
		// "If zero, the application closes the connection after responding
		// to this request."
		c.closeAfterResponse(req.body.Complete())
	}
	return offered
}

// dropParams frees the params of a request whose handler never runs.
func (req *request) dropParams() {
	if req.pb != nil {
		putParamBuf(req.pb)
		req.pb = nil
	}
	req.r.Params.release()
}

// write sends b under the write mutex.
func (c *conn) write(b []byte) error { return c.writeReq(nil, b) }

// writeReq sends b for a request, unless aborted (if not nil) is set.
func (c *conn) writeReq(aborted *atomic.Bool, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if aborted != nil && aborted.Load() {
		return ErrRequestAborted
	}
	if c.dead.Load() {
		return ErrConnClosed
	}
	if _, err := c.rwc.Write(b); err != nil {
		c.close()
		return fmt.Errorf("%w: %w", ErrConnClosed, err)
	}
	return nil
}

// writeBuffers sends v, unless aborted is set: net.Buffers uses writev on TCP
// and unix connections. The slices of v are consumed as they are written.
func (c *conn) writeBuffers(aborted *atomic.Bool, v *net.Buffers) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if aborted.Load() {
		return ErrRequestAborted
	}
	if c.dead.Load() {
		return ErrConnClosed
	}
	if _, err := v.WriteTo(c.rwc); err != nil {
		c.close()
		return fmt.Errorf("%w: %w", ErrConnClosed, err)
	}
	return nil
}

// close closes the connection. The read loop ends, failing the bodies and
// canceling the contexts of the requests still running.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.dead.Store(true)
		c.rwc.Close()
		if b := c.waiting.Load(); b != nil {
			b.wakeWriter()
		}
	})
}

// closeAfterResponse closes a connection whose request did not ask
// FCGI_KEEP_CONN. If the body was not read to its end, closing a TCP socket
// with unread input sends a reset that can destroy the response before the
// web server has read it: half-close instead, and let the read loop discard
// input until the web server closes its side, or lingerTimeout passes.
func (c *conn) closeAfterResponse(bodyComplete bool) {
	type halfCloser interface {
		CloseWrite() error
		SetReadDeadline(time.Time) error
	}
	hc, ok := c.rwc.(halfCloser)
	if bodyComplete || !ok {
		c.close()
		return
	}
	c.wmu.Lock()
	c.dead.Store(true)
	c.wmu.Unlock()
	c.dmu.Lock()
	c.lingering = true
	err := hc.SetReadDeadline(time.Now().Add(lingerTimeout))
	c.dmu.Unlock()
	if err != nil || hc.CloseWrite() != nil {
		c.close()
		return
	}
	if b := c.waiting.Load(); b != nil {
		b.wakeWriter()
	}
}

// closeIfIdle closes the connection if no request is in flight, and reports
// whether the connection is closed.
func (c *conn) closeIfIdle() bool {
	if c.inflight.CompareAndSwap(0, idleClosed) {
		c.close()
	}
	return c.dead.Load()
}

// deactivate counts a request out of the limits, before its
// FCGI_END_REQUEST is written.
func (c *conn) deactivate() {
	c.active.Add(-1)
	c.srv.active.Add(-1)
}

// endInflight counts a request out; a draining server closes the
// connection when it goes idle.
func (c *conn) endInflight() {
	if c.inflight.Add(-1) == 0 && c.srv.inShutdown.Load() {
		c.closeIfIdle()
	}
}

// report passes the connection's first error to Server.ConnError.
func (c *conn) report(err error) {
	if c.reported.Swap(true) {
		return
	}
	if f := c.srv.ConnError; f != nil {
		f(c.remote, err)
	}
}

// release drops a reference; the last one untracks the connection.
func (c *conn) release() {
	if c.refs.Add(-1) == 0 {
		c.srv.untrack(c)
		close(c.done)
	}
}
