// This file holds Server: accepting connections, tracking them, and the
// graceful (Shutdown) and hard (Close) stops.

package fcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("fcgi: server closed")

// Sentinel errors for the limits a Server enforces. They are passed to
// Server.Refused (and, for ErrStalled, to Server.ConnError) wrapped with
// the request or connection they refused.
var (
	// ErrTooManyConns: a connection arrived with MaxConns connections open;
	// its requests are answered FCGI_OVERLOADED and it is closed.
	ErrTooManyConns = errors.New("fcgi: too many connections")
	// ErrTooManyRequests: FCGI_BEGIN_REQUEST with MaxReqs requests in
	// progress; answered FCGI_OVERLOADED.
	ErrTooManyRequests = errors.New("fcgi: too many concurrent requests")
	// ErrCantMultiplex: a second request on a connection while NoMultiplex
	// is set; answered FCGI_CANT_MPX_CONN.
	ErrCantMultiplex = errors.New("fcgi: multiplexing disabled")
	// ErrUnknownRole: a Filter or unknown role; answered FCGI_UNKNOWN_ROLE.
	ErrUnknownRole = errors.New("fcgi: role not served")
	// ErrParamsTooLarge: a FCGI_PARAMS stream over MaxParamsSize; the
	// request is answered "Status: 431" without reaching the handler.
	ErrParamsTooLarge = errors.New("fcgi: params too large")
	// ErrStalled: the web server sent part of a record and then nothing for
	// StallTimeout; the connection is closed.
	ErrStalled = errors.New("fcgi: connection stalled in the middle of a record")
	// ErrBodyTooLarge: a multiplexed request's unread body outgrew MaxSpool;
	// its Body fails with this error and the rest is discarded.
	ErrBodyTooLarge = errors.New("fcgi: unread body over the spool limit")
)

// Defaults for the Server fields left 0.
const (
	DefaultMaxConns      = 1000
	DefaultMaxReqs       = 1000
	DefaultMaxParamsSize = 1 << 20
	DefaultStallTimeout  = 30 * time.Second
	DefaultMaxSpool      = 1 << 30
)

// Server serves FastCGI connections. It needs a Handler; its fields must not
// change once serving has begun.
type Server struct {
	// Handler serves every request. It must not be nil.
	Handler Handler

	// MaxConns bounds the connections open at once (0 means
	// DefaultMaxConns). A connection beyond it has every request answered
	// with FCGI_END_REQUEST{FCGI_OVERLOADED} and is then closed. It is
	// advertised as FCGI_MAX_CONNS.
	MaxConns int

	// MaxReqs bounds the requests in progress at once, over all
	// connections (0 means DefaultMaxReqs). An FCGI_BEGIN_REQUEST beyond it
	// is answered FCGI_OVERLOADED. It is advertised as FCGI_MAX_REQS.
	MaxReqs int

	// NoMultiplex refuses a second request on a connection while one is in
	// progress, with FCGI_CANT_MPX_CONN, and advertises FCGI_MPXS_CONNS=0.
	// By default requests multiplexed on a connection run concurrently.
	NoMultiplex bool

	// MaxParamsSize bounds one request's FCGI_PARAMS stream in bytes (0
	// means DefaultMaxParamsSize, 1 MiB). A larger request is answered
	// "Status: 431" by the package and never reaches the handler.
	MaxParamsSize int

	// StallTimeout is how long the web server may leave a record half sent
	// before the connection is closed (0 means DefaultStallTimeout; negative
	// disables it). An idle connection between records never times out.
	StallTimeout time.Duration

	// MaxSpool bounds the unread body of one multiplexed request that is
	// kept in a temp file (0 means DefaultMaxSpool, 1 GiB), and SpoolDir is
	// where (default os.TempDir()). See Body for when a body is spooled.
	MaxSpool int64
	SpoolDir string

	// ConnError, if set, is called once when a connection ends because of
	// an error: a malformed record (the error wraps ErrProtocol), a stall
	// (ErrStalled), a read error other than EOF, a handler panic. It may be
	// called from several goroutines at once. The package never logs.
	ConnError func(remote net.Addr, err error)

	// Refused, if set, is called when a limit refuses a request or a
	// connection: the error wraps ErrTooManyConns, ErrTooManyRequests,
	// ErrCantMultiplex, ErrUnknownRole, ErrParamsTooLarge or
	// ErrBodyTooLarge. It may be called from several goroutines at once.
	Refused func(remote net.Addr, err error)

	// testHookInputEnded, if set, is called when a connection's read loop meets the end of
	// its input at a record boundary.
	testHookInputEnded func()

	inShutdown atomic.Bool
	active     atomic.Int32 // requests in progress, over all connections

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v != 0 {
		return v
	}
	return def
}

func (s *Server) maxConns() int      { return orDefault(s.MaxConns, DefaultMaxConns) }
func (s *Server) maxReqs() int       { return orDefault(s.MaxReqs, DefaultMaxReqs) }
func (s *Server) maxParamsSize() int { return orDefault(s.MaxParamsSize, DefaultMaxParamsSize) }
func (s *Server) maxSpool() int64    { return orDefault(s.MaxSpool, DefaultMaxSpool) }

func (s *Server) stallTimeout() time.Duration {
	return orDefault(s.StallTimeout, DefaultStallTimeout)
}

// refused reports a limit that bit.
func (s *Server) refused(remote net.Addr, err error) {
	if f := s.Refused; f != nil {
		f(remote, err)
	}
}

// Serve accepts connections on l and serves each in its own goroutine. It
// closes l when it returns, and returns ErrServerClosed after Shutdown or
// Close.
func (s *Server) Serve(l net.Listener) error {
	if s.Handler == nil {
		l.Close()
		return errors.New("fcgi: Server.Handler is nil")
	}
	if !s.trackListener(&l, true) {
		l.Close()
		return ErrServerClosed
	}
	defer s.trackListener(&l, false)

	var delay time.Duration
	for {
		rw, err := l.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// EMFILE and friends: back off and retry, like net/http.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("fcgi: accept: %w", err)
		}
		delay = 0
		c := s.track(rw, rw.RemoteAddr())
		if c == nil {
			rw.Close()
			continue
		}
		go c.serve()
	}
}

// ServeConn serves one connection, such as one passed by a parent process,
// and returns when the connection and its handlers are done.
func (s *Server) ServeConn(c net.Conn) {
	s.serveRWC(c, c.RemoteAddr())
}

// serveRWC is ServeConn for anything that reads and writes, as tests use.
func (s *Server) serveRWC(rwc io.ReadWriteCloser, remote net.Addr) {
	if s.Handler == nil {
		rwc.Close()
		return
	}
	c := s.track(rwc, remote)
	if c == nil {
		rwc.Close()
		return
	}
	c.serve()
	<-c.done
}

// Shutdown stops the server gracefully: it closes the listeners, closes
// idle connections, and waits for running requests to end and their
// connections to close. A connection is closed as soon as it has no request
// in flight. If ctx ends first, Shutdown returns its error and the remaining
// connections stay open; Close ends them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	s.mu.Lock()
	err := s.closeListenersLocked()
	s.mu.Unlock()

	const maxPoll = 500 * time.Millisecond
	poll := time.Millisecond
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		if s.closeIdleConns() {
			return err
		}
		if testHookShutdownPoll != nil {
			testHookShutdownPoll()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			poll = min(2*poll, maxPoll)
			timer.Reset(poll)
		}
	}
}

// testHookShutdownPoll, if set, is called after each pass of Shutdown that
// found connections left.
var testHookShutdownPoll func()

// Close stops the server at once: listeners and connections are closed,
// running handlers see their contexts canceled and their writes fail.
// Close does not wait for handlers to return.
func (s *Server) Close() error {
	s.inShutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.closeListenersLocked()
	for c := range s.conns {
		c.close()
	}
	return err
}

// closeIdleConns closes the idle connections and reports whether no
// connection is left.
func (s *Server) closeIdleConns() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.closeIfIdle()
	}
	return len(s.conns) == 0
}

func (s *Server) closeListenersLocked() error {
	var err error
	for l := range s.listeners {
		if cerr := (*l).Close(); cerr != nil && err == nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
		delete(s.listeners, l)
	}
	return err
}

// trackListener adds or removes l; adding fails once the server is
// stopping.
func (s *Server) trackListener(l *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		if _, ok := s.listeners[l]; ok {
			(*l).Close()
			delete(s.listeners, l)
		}
		return true
	}
	if s.inShutdown.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[*net.Listener]struct{})
	}
	s.listeners[l] = struct{}{}
	return true
}

// track makes a conn for rwc, or returns nil once the server is stopping.
func (s *Server) track(rwc io.ReadWriteCloser, remote net.Addr) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return nil
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	c := newConn(s, rwc, remote)
	// Over MaxConns the connection is still read, so that its requests are
	// answered FCGI_OVERLOADED rather than left to time out.
	c.overloaded = len(s.conns) >= s.maxConns()
	s.conns[c] = struct{}{}
	return c
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}
