// This file holds the lifecycle of a connection: serving it, counting its
// requests in and out, and the ways it closes (at once, after a response, or
// once idle during a graceful shutdown).

package fcgi

import (
	"bufio"
	"io"
	"time"
)

// lingerTimeout bounds how long a connection closed without FCGI_KEEP_CONN
// keeps reading a body nobody wants.
const lingerTimeout = 5 * time.Second

// serve runs the read loop, then tears the connection down.
func (c *conn) serve() {
	if v := readerPool.Get(); v != nil {
		c.br = v.(*bufio.Reader)
		c.br.Reset(c.rwc)
	} else {
		c.br = bufio.NewReaderSize(c.rwc, readBufSize)
	}
	err := c.readLoop()
	if err == io.EOF {
		c.inputEnded.Store(true)
		if h := c.srv.testHookInputEnded; h != nil {
			h()
		}
		c.answerBeforeClose()
	}
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
			// Begun, never launched: counted in here, so counted out here.
			req.dropParams()
			req.body.close()
			c.deactivate()
			c.release()
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
	c.release() // the read loop's
}

// answerBeforeClose is called when the web server's input ended at a record boundary. If it
// only shut down its sending side (shutdown(SHUT_WR)) and still reads, that is not an abort of
// the requests it sent whole (params and body ended): they are answered, as php-fpm does, and
// the connection closes after the last (with or without FCGI_KEEP_CONN: nothing more can come,
// and the close waits for every answer). A request it left unfinished is failed at once, as for
// any close. If it closed the connection both ways (as nginx does when its client goes away),
// which a unix socket shows at once (peerGone), every request is failed as before. Over TCP the
// two cannot be told apart until a write fails, so a request sent whole runs on until then.
// The wait ends early if the connection is closed meanwhile (Server.Close, a failed write).
func (c *conn) answerBeforeClose() {
	if len(c.pending) > 0 {
		c.launchPending()
	}
	var whole, unfinished []*request
	for _, req := range c.reqs {
		switch {
		case req == ignoreStdin || req == ignoreAll || !req.launched || req.done.Load():
		case req.stdinDone:
			whole = append(whole, req)
		default:
			unfinished = append(unfinished, req)
		}
	}
	if len(whole) == 0 || c.dead.Load() || peerGone(c.rwc) {
		return // serve closes the connection, then fails every request
	}
	for _, req := range unfinished {
		// Failed now, with the connection still open for the others: as for
		// FCGI_ABORT_REQUEST, its output stops and its handler sends no FCGI_END_REQUEST
		// (the web server never finished sending the request).
		if req.w.endClaimed.CompareAndSwap(false, true) {
			c.wmu.Lock()
			req.w.webAborted.Store(true)
			c.wmu.Unlock()
		}
		req.body.fail(ErrConnClosed)
		req.r.cancelCtx(ErrConnClosed)
	}
	// The waiter ends with the last handler; if the wait is cut short, serve then fails them.
	answered := make(chan struct{})
	go func() {
		c.handlers.Wait()
		close(answered)
	}()
	select {
	case <-answered:
	case <-c.closed:
	}
}

// A request is counted in by countIn at FCGI_BEGIN_REQUEST, out of the
// limits by deactivate just before its FCGI_END_REQUEST is written, and
// released once it is finished.

// countIn counts a new request in, unless MaxReqs requests are in progress
// over all connections.
func (c *conn) countIn() bool {
	if c.srv.active.Add(1) > int32(c.srv.maxReqs()) {
		c.srv.active.Add(-1)
		return false
	}
	c.open.Add(1)
	c.holds.Add(1)
	return true
}

// deactivate counts a request out of the limits, before its
// FCGI_END_REQUEST is written.
func (c *conn) deactivate() {
	c.open.Add(-1)
	c.srv.active.Add(-1)
}

// release drops a hold: a finished request's, or the read loop's. The last
// one untracks the connection. When only one is left (the read loop, or the
// last handler of a connection already closed), a server shutting down
// closes the connection.
func (c *conn) release() {
	switch c.holds.Add(-1) {
	case 0:
		c.srv.untrack(c)
		close(c.done)
	case 1:
		if c.srv.inShutdown.Load() {
			c.close()
		}
	}
}

// closeIfIdle closes the connection if no request holds it, and reports
// whether the connection is closed. A request that the web server begins
// at the same moment fails with ErrConnClosed, as it would with the web
// server's own close.
func (c *conn) closeIfIdle() bool {
	if c.holds.Load() <= 1 {
		c.close()
	}
	return c.dead.Load()
}

// close closes the connection. The read loop ends, failing the bodies and
// canceling the contexts of the requests still running.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.dead.Store(true)
		c.rwc.Close()
		close(c.closed)
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

// report passes the connection's first error to Server.ConnError.
func (c *conn) report(err error) {
	if c.reported.Swap(true) {
		return
	}
	if f := c.srv.ConnError; f != nil {
		f(c.remote, err)
	}
}
