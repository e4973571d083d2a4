// This file holds the handler side of a connection: launching the handlers
// whose params are complete, running them, and ending their requests.

package fcgi

import (
	"context"
	"fmt"
	"runtime"
)

func (c *conn) launchPending() {
	for i, req := range c.pending {
		c.pending[i] = nil
		if req.dropped {
			continue
		}
		req.launched = true
		c.handlers.Add(1)
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
// grows it again for every request, and its exit frees the grown stack.
func (c *conn) handlerLoop(req *request) {
	for c.runHandler(req) {
		var ok bool
		if req, ok = <-c.spare; !ok {
			return // the read loop ended
		}
	}
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
		c.handlers.Done()
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
	if !req.r.KeepConn && !c.inputEnded.Load() {
		// "If zero, the application closes the connection after responding
		// to this request." Once the input has ended, serve closes it after
		// the last answer (answerBeforeClose).
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
