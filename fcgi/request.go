// This file holds what a handler sees of one FastCGI request: Role, Handler,
// Request and its context, and the per-request state shared with the read loop.

package fcgi

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// Role is the role the web server asks of the application in
// FCGI_BEGIN_REQUEST.
type Role uint16

// The roles of the FastCGI 1.0 specification. Responder and Authorizer
// requests reach the Handler; Filter and unknown roles are answered with
// FCGI_UNKNOWN_ROLE.
const (
	RoleResponder  Role = 1
	RoleAuthorizer Role = 2
	RoleFilter     Role = 3
)

// String returns the role's name in the specification.
func (r Role) String() string {
	switch r {
	case RoleResponder:
		return "FCGI_RESPONDER"
	case RoleAuthorizer:
		return "FCGI_AUTHORIZER"
	case RoleFilter:
		return "FCGI_FILTER"
	}
	return "unknown role"
}

// Sentinel errors seen by handlers.
var (
	// ErrRequestAborted is returned by Body.Read, and is the cause of the
	// request's context, after the web server sent FCGI_ABORT_REQUEST.
	ErrRequestAborted = errors.New("fcgi: request aborted by web server")

	// ErrConnClosed is returned (possibly wrapped) by Body.Read and by
	// ResponseWriter methods once the connection is gone, and is the cause
	// of the request's context then.
	ErrConnClosed = errors.New("fcgi: connection closed")
)

// Handler serves one FastCGI request.
//
// ServeFCGI is called in its own goroutine as soon as the request's
// FCGI_PARAMS stream has ended, after every record already received on the
// connection has been processed: whatever part of the body arrived in the
// same read is already in r.Body. When ServeFCGI returns the response is
// ended with FCGI_END_REQUEST, unless it was aborted.
//
// A handler that panics has its connection closed; the panic is reported
// through Server.ConnError and does not crash the process.
type Handler interface {
	ServeFCGI(w *ResponseWriter, r *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(w *ResponseWriter, r *Request)

// ServeFCGI calls f(w, r).
func (f HandlerFunc) ServeFCGI(w *ResponseWriter, r *Request) { f(w, r) }

// Request is one FastCGI request as a handler sees it.
type Request struct {
	// ID is the request id, unique among the connection's active requests.
	ID uint16
	// Role is RoleResponder or RoleAuthorizer.
	Role Role
	// KeepConn is FCGI_KEEP_CONN: without it the connection is closed once
	// the response has been sent.
	KeepConn bool
	// Params are the CGI variables from FCGI_PARAMS.
	Params Params
	// Body is the FCGI_STDIN stream.
	Body *Body

	c *conn

	mu       sync.Mutex
	ctx      context.Context
	cancel   context.CancelCauseFunc
	canceled error // cause, once canceled
}

// Context returns the request's context. It is canceled when the web server
// aborts the request (context.Cause is ErrRequestAborted), when the
// connection dies (ErrConnClosed), and when ServeFCGI returns
// (context.Canceled).
func (r *Request) Context() context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil {
		// Made on first use: many handlers never ask.
		r.ctx, r.cancel = context.WithCancelCause(context.Background())
		if r.canceled != nil {
			r.cancel(r.canceled)
		}
	}
	return r.ctx
}

// RemoteAddr returns the web server's address on this connection. It may be
// nil, or an unnamed address for unix sockets.
func (r *Request) RemoteAddr() net.Addr { return r.c.remote }

// cancelCtx cancels the context with cause, once.
func (r *Request) cancelCtx(cause error) {
	r.mu.Lock()
	if r.canceled == nil {
		r.canceled = cause
		if r.cancel != nil {
			r.cancel(cause)
		}
	}
	r.mu.Unlock()
}

// request is everything about one request, in one allocation. Fields after
// the comment are owned by the connection's read loop.
type request struct {
	r    Request
	body Body
	w    ResponseWriter

	// done is set by the handler goroutine when the request has become
	// inactive: the handler returned and FCGI_END_REQUEST is (being) sent.
	done atomic.Bool

	// Read loop only.
	pb         *paramBuf // FCGI_PARAMS being received
	paramsDone bool      // empty FCGI_PARAMS received; handler pending or running
	launched   bool      // handler goroutine started
	stdinDone  bool      // empty FCGI_STDIN received
	dropped    bool      // answered by the read loop: never launch
}

func newRequest(c *conn, id uint16, role Role, keepConn bool) *request {
	req := &request{}
	req.r.ID = id
	req.r.Role = role
	req.r.KeepConn = keepConn
	req.r.Body = &req.body
	req.r.c = c
	req.body.init()
	req.w.c = c
	req.w.id = id
	return req
}

// Sentinel map entries for ids that were answered by the read loop itself.
// Their records are ignored, as the spec asks for inactive ids: "While a
// request ID R is inactive, the application ignores records with requestId
// == R, except for FCGI_BEGIN_REQUEST records".
var (
	// ignoreStdin: aborted before its handler ran; the entry goes at the
	// empty FCGI_STDIN record.
	ignoreStdin = &request{}
	// ignoreAll: rejected role; the entry stays until the id is reused.
	ignoreAll = &request{}
)
