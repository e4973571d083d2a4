package fcgi

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// serveOn starts s on a fresh unix socket and returns its address and
// Serve's result.
func serveOn(t *testing.T, s *Server) (string, <-chan error) {
	t.Helper()
	l, err := Listen(filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	return l.Addr().String(), served
}

func dialUnix(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestShutdownWaitsForRequests(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	s := &Server{Handler: HandlerFunc(func(w *ResponseWriter, r *Request) {
		close(started)
		<-release
		w.Write([]byte("finished"))
	})}
	addr, served := serveOn(t, s)

	busy := dialUnix(t, addr)
	busy.Write(simpleRequest(1, flagKeepConn, nil, nil))
	<-started
	idle := dialUnix(t, addr)
	idle.Write(makeRecord(typeGetValues, 0, nil, 0))
	if _, err := readRec(idle); err != nil { // served: tracked and idle
		t.Fatal(err)
	}

	polled := make(chan struct{}, 1)
	testHookShutdownPoll = func() {
		select {
		case polled <- struct{}{}:
		default:
		}
	}
	defer func() { testHookShutdownPoll = nil }()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	expectClosed(t, idle)
	if err := <-served; err != ErrServerClosed {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if _, err := net.Dial("unix", addr); err == nil {
		t.Error("listener still accepting")
	}
	for range 2 { // a pass after the idle close, too, finds the busy connection
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with a request running", err)
		case <-polled:
		}
	}

	close(release)
	resp := readResponse(t, busy, 1)
	if string(resp.stdout) != "finished" {
		t.Errorf("stdout %q", resp.stdout)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	expectClosed(t, busy) // closed once idle, despite FCGI_KEEP_CONN
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after Shutdown = %v", err)
	}
}

func TestShutdownTimeoutThenClose(t *testing.T) {
	started := make(chan struct{})
	causes := make(chan error, 1)
	s := &Server{Handler: HandlerFunc(func(w *ResponseWriter, r *Request) {
		close(started)
		<-r.Context().Done()
		causes <- context.Cause(r.Context())
	})}
	addr, served := serveOn(t, s)
	c := dialUnix(t, addr)
	c.Write(simpleRequest(1, flagKeepConn, nil, nil))
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if cause := <-causes; cause != ErrConnClosed {
		t.Errorf("context cause = %v, want ErrConnClosed", cause)
	}
	expectClosed(t, c)
	if err := <-served; err != ErrServerClosed {
		t.Errorf("Serve = %v", err)
	}
}

func TestServeAfterClose(t *testing.T) {
	s := &Server{Handler: echoHandler}
	s.Close()
	l, err := Listen(filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err != ErrServerClosed {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Serve left the listener open")
	}
}

func TestServeNilHandler(t *testing.T) {
	l, err := Listen(filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := new(Server).Serve(l); err == nil {
		t.Error("Serve with nil Handler succeeded")
	}
}

// ServeConn serves a connection it was handed and returns when it is done.
func TestServeConn(t *testing.T) {
	a, b := net.Pipe()
	s := &Server{Handler: echoHandler}
	done := make(chan struct{})
	go func() {
		s.ServeConn(a)
		close(done)
	}()
	go b.Write(simpleRequest(1, 0, nil, []byte("piped")))
	if resp := readResponse(t, b, 1); !bytes.HasSuffix(resp.stdout, []byte("piped")) {
		t.Errorf("stdout %q", resp.stdout)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return after the connection closed")
	}
}
