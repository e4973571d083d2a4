// This file holds conn, one transport connection from the web server: which
// goroutine owns which part of it, and the mutex-guarded writes that all its
// requests share. The read loop is in readloop.go, the refusals and limits in
// limits.go, the handler goroutines in handler.go, and opening, counting and
// closing in lifecycle.go.

package fcgi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
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

	wmu           sync.Mutex // serializes writes to rwc
	writeDeadline time.Time  // set on rwc, under wmu (ResponseWriter.SetWriteDeadline)

	// Shared by the read loop and the handlers (lifecycle.go).
	dead      atomic.Bool // no more writes: closed, broken, or half-closed
	closeOnce sync.Once
	waiting   atomic.Pointer[Body] // body the read loop waits on for room
	// open counts the requests begun whose FCGI_END_REQUEST is not yet being
	// written: what the limits count. It drops before FCGI_END_REQUEST is
	// written, so that the web server's next request never finds the old
	// one counted.
	open atomic.Int32
	// holds counts what keeps the connection: the read loop, and each
	// request from FCGI_BEGIN_REQUEST until it is finished (its handler
	// returned and FCGI_END_REQUEST sent, or answered by the read loop). The
	// last release untracks the connection; one left means idle.
	holds atomic.Int32
	// spareReady: a handler goroutine will take the next request from spare.
	spareReady atomic.Bool
	reported   atomic.Bool
	done       chan struct{} // closed when holds drops to zero
	closed     chan struct{} // closed by close
	// inputEnded: the web server's input ended at a record boundary; serve closes the
	// connection once the requests it sent whole are answered.
	inputEnded atomic.Bool
	// handlers counts the handlers launched and not yet returned: added by the read loop,
	// done by each handler once its request has ended.
	handlers sync.WaitGroup
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
		closed:  make(chan struct{}),
	}
	c.holds.Store(1) // the read loop's
	return c
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
