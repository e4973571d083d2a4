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

// Defaults advertised in FCGI_GET_VALUES_RESULT when Server leaves them 0.
const (
	defaultMaxConns = 1000
	defaultMaxReqs  = 1000
)

// Server serves FastCGI connections. It needs a Handler; its fields must not
// change once serving has begun.
type Server struct {
	// Handler serves every request. It must not be nil.
	Handler Handler

	// MaxConns and MaxReqs are advertised to the web server as
	// FCGI_MAX_CONNS and FCGI_MAX_REQS in FCGI_GET_VALUES_RESULT (0 means
	// 1000). They are not enforced here. FCGI_MPXS_CONNS is always 1.
	MaxConns, MaxReqs int

	// ConnError, if set, is called once when a connection ends because of
	// an error: a malformed record (the error wraps ErrProtocol), a read
	// error other than EOF, a handler panic. It may be called from several
	// goroutines at once. The package never logs.
	ConnError func(remote net.Addr, err error)

	inShutdown atomic.Bool

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
}

func (s *Server) maxConns() int {
	if s.MaxConns > 0 {
		return s.MaxConns
	}
	return defaultMaxConns
}

func (s *Server) maxReqs() int {
	if s.MaxReqs > 0 {
		return s.MaxReqs
	}
	return defaultMaxReqs
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
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			poll = min(2*poll, maxPoll)
			timer.Reset(poll)
		}
	}
}

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
	s.conns[c] = struct{}{}
	return c
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}
