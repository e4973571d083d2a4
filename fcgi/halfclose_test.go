// This file tests a web server that half-closes its end (shutdown(SHUT_WR)) once it has sent
// its requests: the end of input after whole requests is not an abort, while an end in the
// middle of a request still is.

package fcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// TestHalfCloseAfterWholeRequests: requests the web server sent whole before it half-closed
// are answered, then the connection is closed, as php-fpm does; over unix sockets and TCP,
// with and without FCGI_KEEP_CONN, one request or two multiplexed.
func TestHalfCloseAfterWholeRequests(t *testing.T) {
	get := map[string]string{"REQUEST_METHOD": "GET"}
	post := map[string]string{"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "11"}
	type sent struct {
		id   uint16
		body string
	}
	shapes := []struct {
		name string
		reqs []sent
	}{
		{"GET", []sent{{1, ""}}},
		{"POST with a body", []sent{{1, "hello world"}}},
		{"two multiplexed", []sent{{1, "first body"}, {2, "second body"}}},
	}
	for _, network := range []string{"unix", "tcp"} {
		for _, keep := range []bool{true, false} {
			for _, shape := range shapes {
				name := fmt.Sprintf("%s/keep_conn=%v/%s", network, keep, shape.name)
				t.Run(name, func(t *testing.T) {
					// The handlers answer only once the read loop has met the end of input: the
					// case a slow app makes common, and a fast one races.
					ended := make(chan struct{})
					ts := startServer(t, network, HandlerFunc(func(w *ResponseWriter, r *Request) {
						<-ended
						echoHandler(w, r)
					}), func(s *Server) { s.testHookInputEnded = func() { close(ended) } })
					c := ts.dial(t)
					flags := byte(0)
					if keep {
						flags = flagKeepConn
					}
					var b []byte
					var ids []uint16
					for _, r := range shape.reqs {
						params := get
						if r.body != "" {
							params = post
						}
						b = append(b, simpleRequest(r.id, flags, params, []byte(r.body))...)
						ids = append(ids, r.id)
					}
					if _, err := c.Write(b); err != nil {
						t.Fatal(err)
					}
					if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
						t.Fatal(err)
					}
					got := readResponses(t, c, ids...)
					for _, r := range shape.reqs {
						want := "Content-Type: text/plain\r\n\r\n" + r.body
						if resp := got[r.id]; string(resp.stdout) != want || resp.status != statusRequestComplete {
							t.Errorf("request %d: stdout %q, status %d; want %q, complete", r.id, resp.stdout, resp.status, want)
						}
					}
					if rest, err := io.ReadAll(c); err != nil || len(rest) > 0 {
						t.Errorf("after the answers: % x, %v; want the connection closed", rest, err)
					}
					ts.noConnErrors(t)
				})
			}
		}
	}
}

// TestHalfCloseMidRequest: an end of input before a request's params or body have ended
// still aborts it: its handler never runs, or sees its body fail and its context canceled
// with ErrConnClosed; the connection is closed.
func TestHalfCloseMidRequest(t *testing.T) {
	cases := []struct {
		name    string
		input   []byte
		handler bool // the handler runs (the params ended)
	}{
		{"in the params", append(beginRecord(1, RoleResponder, flagKeepConn),
			makeRecord(typeParams, 1, nameValuePair11("REQUEST_METHOD", "POST"), 0)...), false},
		{"in the body", append(append(beginRecord(1, RoleResponder, flagKeepConn),
			stream(typeParams, 1, nameValuePair11("CONTENT_LENGTH", "10"), 100)...),
			makeRecord(typeStdin, 1, []byte("hello"), 0)...), true},
	}
	for _, network := range []string{"unix", "tcp"} {
		for _, tc := range cases {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				checkAborted(t, network, tc.input, tc.handler, true)
			})
		}
	}
	// A web server that closes a unix socket both ways (nginx, when its client goes away)
	// abandons even a whole request: the peer's close shows on the socket at once. Over TCP it
	// looks like a half-close until a write fails.
	t.Run("unix/closed both ways after a whole request", func(t *testing.T) {
		checkAborted(t, "unix", simpleRequest(1, flagKeepConn, map[string]string{"REQUEST_METHOD": "GET"}, nil), true, false)
	})
}

// checkAborted sends input on a new connection, then half-closes it (or closes it, with
// halfClose false), and checks that the request was abandoned: no answer, the connection
// closed, and its handler, if it ran, saw ErrConnClosed from its body and its context.
func checkAborted(t *testing.T, network string, input []byte, handler, halfClose bool) {
	t.Helper()
	type seen struct{ readErr, cause error }
	results := make(chan seen, 1)
	ts := startServer(t, network, HandlerFunc(func(w *ResponseWriter, r *Request) {
		_, readErr := io.ReadAll(r.Body)
		if readErr == nil {
			readErr = errors.New("body read to its end")
		}
		<-r.Context().Done()
		results <- seen{readErr, context.Cause(r.Context())}
	}))
	c := ts.dial(t)
	c.Write(input)
	if !halfClose {
		c.Close()
	} else {
		c.(interface{ CloseWrite() error }).CloseWrite()
		if rest, err := io.ReadAll(c); err != nil && !errors.Is(err, net.ErrClosed) || len(rest) > 0 {
			t.Errorf("got % x, %v; want the connection closed with no answer", rest, err)
		}
	}
	if !handler {
		return
	}
	var res seen
	select {
	case res = <-results:
	case <-time.After(10 * time.Second): // only a hang reaches it
		t.Fatal("the handler's context was not canceled: the request was not abandoned")
	}
	if !errors.Is(res.cause, ErrConnClosed) {
		t.Errorf("context cause %v, want ErrConnClosed", res.cause)
	}
	if halfClose && !errors.Is(res.readErr, ErrConnClosed) {
		t.Errorf("body read error %v, want ErrConnClosed", res.readErr)
	}
}

// TestHalfCloseMixed: on a multiplexed connection half-closed with one request whole and one
// not, the whole one is answered and the other abandoned without FCGI_END_REQUEST; then the
// connection closes.
func TestHalfCloseMixed(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ended := make(chan struct{})
			causes := make(chan error, 1)
			ts := startServer(t, network, HandlerFunc(func(w *ResponseWriter, r *Request) {
				if r.ID == 2 {
					io.ReadAll(r.Body)
					<-r.Context().Done()
					causes <- context.Cause(r.Context())
					return
				}
				<-ended
				echoHandler(w, r)
			}), func(s *Server) { s.testHookInputEnded = func() { close(ended) } })
			c := ts.dial(t)
			b := simpleRequest(1, flagKeepConn, map[string]string{"REQUEST_METHOD": "POST"}, []byte("whole"))
			b = append(b, beginRecord(2, RoleResponder, flagKeepConn)...)
			b = append(b, stream(typeParams, 2, nameValuePair11("CONTENT_LENGTH", "10"), 100)...)
			b = append(b, makeRecord(typeStdin, 2, []byte("part"), 0)...)
			c.Write(b)
			c.(interface{ CloseWrite() error }).CloseWrite()
			var out []rec
			for {
				rc, err := readRec(c)
				if err != nil {
					break
				}
				out = append(out, rc)
			}
			var stdout []byte
			ends := 0
			for _, rc := range out {
				if rc.id != 1 {
					t.Errorf("record %s for request %d, which the web server never finished", rc.typ, rc.id)
				}
				switch rc.typ {
				case typeStdout:
					stdout = append(stdout, rc.content...)
				case typeEndRequest:
					ends++
				}
			}
			if want := "Content-Type: text/plain\r\n\r\nwhole"; string(stdout) != want || ends != 1 {
				t.Errorf("request 1: stdout %q, %d FCGI_END_REQUEST; want %q and one", stdout, ends, want)
			}
			select {
			case cause := <-causes:
				if !errors.Is(cause, ErrConnClosed) {
					t.Errorf("request 2's context cause %v, want ErrConnClosed", cause)
				}
			case <-time.After(10 * time.Second): // only a hang reaches it
				t.Fatal("request 2 not abandoned")
			}
		})
	}
}
