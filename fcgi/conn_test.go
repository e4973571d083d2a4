package fcgi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// A small request sent in one write reaches the handler with its body
// complete: the read loop delivers every buffered record before starting it.
func TestBodyCompleteAtStart(t *testing.T) {
	type seen struct {
		complete bool
		buffered int
		method   string
		role     Role
		keep     bool
	}
	got := make(chan seen, 1)
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		m, _ := r.Params.Get("REQUEST_METHOD")
		got <- seen{r.Body.Complete(), r.Body.Buffered(), string(m), r.Role, r.KeepConn}
		echoHandler(w, r)
	}))
	c := ts.dial(t)
	body := bytes.Repeat([]byte("b"), 3000)
	if _, err := c.Write(simpleRequest(1, flagKeepConn, map[string]string{"REQUEST_METHOD": "POST"}, body)); err != nil {
		t.Fatal(err)
	}
	resp := readResponse(t, c, 1)
	s := <-got
	if !s.complete || s.buffered != len(body) {
		t.Errorf("at start: Complete = %v, Buffered = %d; want true, %d", s.complete, s.buffered, len(body))
	}
	if s.method != "POST" || s.role != RoleResponder || !s.keep {
		t.Errorf("request = %+v", s)
	}
	if want := "Content-Type: text/plain\r\n\r\n" + string(body); string(resp.stdout) != want {
		t.Errorf("stdout = %q", resp.stdout)
	}
	if resp.status != statusRequestComplete || resp.appStatus != 0 {
		t.Errorf("END_REQUEST status %d app %d", resp.status, resp.appStatus)
	}
	ts.noConnErrors(t)
}

// Several requests interleaved on one connection, each record of one
// request followed by one of the other.
func TestMultiplexed(t *testing.T) {
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		name, _ := r.Params.Get("NAME")
		fmt.Fprintf(w, "%s:%d:%s", name, r.ID, body)
	}))
	c := ts.dial(t)
	ids := []uint16{1, 2, 300}
	var b []byte
	for _, id := range ids {
		b = append(b, beginRecord(id, RoleResponder, flagKeepConn)...)
	}
	for _, id := range ids {
		b = append(b, makeRecord(typeParams, id, nameValuePair11("NAME", "req"), 0)...)
	}
	for _, id := range ids {
		b = append(b, makeRecord(typeParams, id, nil, 0)...)
	}
	for i := range 3 {
		for _, id := range ids {
			b = append(b, makeRecord(typeStdin, id, fmt.Appendf(nil, "%d-%d;", id, i), 3)...)
		}
	}
	for _, id := range ids {
		b = append(b, makeRecord(typeStdin, id, nil, 0)...)
	}
	// Send in small pieces so records straddle reads.
	go func() {
		for len(b) > 0 {
			n := min(len(b), 7)
			c.Write(b[:n])
			b = b[n:]
		}
	}()
	resps := readResponses(t, c, ids...)
	for _, id := range ids {
		want := fmt.Sprintf("req:%d:%d-0;%d-1;%d-2;", id, id, id, id)
		if got := string(resps[id].stdout); got != want {
			t.Errorf("id %d: stdout %q, want %q", id, got, want)
		}
	}
	ts.noConnErrors(t)
}

func TestGetValues(t *testing.T) {
	ts := startServer(t, "unix", echoHandler, func(s *Server) { s.MaxConns, s.MaxReqs = 10, 50 })
	c := ts.dial(t)
	q := bytes.Join([][]byte{
		nameValuePair11("FCGI_MAX_CONNS", ""),
		nameValuePair11("FCGI_UNKNOWN_NAME", ""),
		nameValuePair11("FCGI_MAX_REQS", ""),
		nameValuePair11("FCGI_MPXS_CONNS", ""),
		nameValuePair11("FCGI_MAX_CONNS", ""), // asked twice, answered once
	}, nil)
	c.Write(makeRecord(typeGetValues, 0, q, 5))
	want := makeRecord(typeGetValuesResult, 0, bytes.Join([][]byte{
		nameValuePair11("FCGI_MAX_CONNS", "10"),
		nameValuePair11("FCGI_MAX_REQS", "50"),
		nameValuePair11("FCGI_MPXS_CONNS", "1"),
	}, nil), 0)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	ts.noConnErrors(t)

	// Defaults, and nothing known asked.
	ts = startServer(t, "unix", echoHandler)
	c = ts.dial(t)
	c.Write(makeRecord(typeGetValues, 0, nameValuePair11("FCGI_MAX_REQS", ""), 0))
	c.Write(makeRecord(typeGetValues, 0, nameValuePair11("OTHER", ""), 0))
	for _, want := range [][]byte{
		makeRecord(typeGetValuesResult, 0, nameValuePair11("FCGI_MAX_REQS", "1000"), 0),
		makeRecord(typeGetValuesResult, 0, nil, 0),
	} {
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	}
	ts.noConnErrors(t)
}

func TestUnknownType(t *testing.T) {
	ts := startServer(t, "unix", echoHandler)
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"management", makeRecord(42, 0, []byte("xyz"), 5), []byte{1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0}},
		{"application", makeRecord(200, 1, nil, 0), []byte{1, 11, 0, 0, 0, 8, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0}},
		{"begin request as management", beginRecord(0, RoleResponder, 0), []byte{1, 11, 0, 0, 0, 8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t)
			c.Write(tt.in)
			got := make([]byte, len(tt.want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got % x, want % x", got, tt.want)
			}
			// The connection still serves requests.
			c.Write(simpleRequest(1, 0, nil, []byte("ok")))
			if resp := readResponse(t, c, 1); !bytes.HasSuffix(resp.stdout, []byte("ok")) {
				t.Errorf("stdout %q", resp.stdout)
			}
		})
	}
	ts.noConnErrors(t)
}

func TestUnknownRole(t *testing.T) {
	called := make(chan Role, 4)
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		called <- r.Role
		w.Write([]byte("Status: 200\r\n\r\n"))
	}))
	tests := []struct {
		role Role
		want protocolStatus
	}{
		{RoleFilter, statusUnknownRole},
		{99, statusUnknownRole},
		{RoleAuthorizer, statusRequestComplete},
		{RoleResponder, statusRequestComplete},
	}
	c := ts.dial(t)
	for _, tt := range tests {
		t.Run(tt.role.String(), func(t *testing.T) {
			// The whole request, as a web server would pipeline it; records
			// for the refused id are ignored.
			b := beginRecord(5, tt.role, flagKeepConn)
			b = append(b, stream(typeParams, 5, nameValuePair11("A", "b"), 100)...)
			b = append(b, stream(typeStdin, 5, []byte("body"), 100)...)
			b = append(b, stream(typeData, 5, []byte("data"), 100)...)
			c.Write(b)
			resp := readResponse(t, c, 5)
			if resp.status != tt.want {
				t.Errorf("protocolStatus = %d, want %d", resp.status, tt.want)
			}
			if tt.want == statusUnknownRole {
				if len(resp.records) != 1 {
					t.Errorf("got %d records, want END_REQUEST only", len(resp.records))
				}
				return
			}
			if r := <-called; r != tt.role {
				t.Errorf("handler saw role %v", r)
			}
		})
	}
	select {
	case r := <-called:
		t.Errorf("handler called for role %v", r)
	default:
	}
	ts.noConnErrors(t)
}

func TestAbortRequest(t *testing.T) {
	type result struct {
		readErr, cause error
	}
	results := make(chan result, 1)
	started := make(chan struct{})
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		if _, ok := r.Params.Get("ECHO"); ok {
			echoHandler(w, r)
			return
		}
		close(started)
		_, err := io.ReadAll(r.Body) // blocks: the body never ends
		<-r.Context().Done()
		results <- result{err, context.Cause(r.Context())}
		w.SetAppStatus(7)
	}))
	c := ts.dial(t)
	b := beginRecord(1, RoleResponder, flagKeepConn)
	b = append(b, stream(typeParams, 1, nil, 1)...)
	b = append(b, makeRecord(typeStdin, 1, []byte("partial"), 0)...)
	c.Write(b)
	<-started
	c.Write(makeRecord(typeAbortRequest, 1, nil, 0))
	res := <-results
	if !errors.Is(res.readErr, ErrRequestAborted) {
		t.Errorf("Body read error = %v, want ErrRequestAborted", res.readErr)
	}
	if res.cause != ErrRequestAborted {
		t.Errorf("context cause = %v, want ErrRequestAborted", res.cause)
	}
	// FCGI_END_REQUEST is sent as the abort arrives, not when the handler
	// returns: its appStatus is not the handler's.
	resp := readResponse(t, c, 1)
	if resp.status != statusRequestComplete || resp.appStatus != 0 {
		t.Errorf("END_REQUEST status %d app %d, want 0 0", resp.status, resp.appStatus)
	}
	// The rest of the aborted body, and a late abort, are ignored; the id
	// can be reused.
	c.Write(makeRecord(typeStdin, 1, []byte("more"), 0))
	c.Write(makeRecord(typeStdin, 1, nil, 0))
	c.Write(makeRecord(typeAbortRequest, 1, nil, 0))
	c.Write(simpleRequest(1, flagKeepConn, map[string]string{"ECHO": "1"}, []byte("again")))
	if resp := readResponse(t, c, 1); !bytes.HasSuffix(resp.stdout, []byte("again")) {
		t.Errorf("after abort: stdout %q", resp.stdout)
	}
	ts.noConnErrors(t)
}

// An abort that arrives before the params end is answered by the server; no
// handler runs.
func TestAbortBeforeHandler(t *testing.T) {
	called := make(chan struct{}, 1)
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) { called <- struct{}{} }))
	for _, tt := range []struct {
		name      string
		endParams bool
	}{{"mid params", false}, {"params ended", true}} {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t)
			b := beginRecord(3, RoleResponder, flagKeepConn)
			b = append(b, makeRecord(typeParams, 3, nameValuePair11("A", "b"), 0)...)
			if tt.endParams {
				b = append(b, makeRecord(typeParams, 3, nil, 0)...)
			}
			// In the same write: the handler has not been launched.
			b = append(b, makeRecord(typeAbortRequest, 3, nil, 0)...)
			if !tt.endParams {
				b = append(b, makeRecord(typeParams, 3, nil, 0)...)
			}
			b = append(b, stream(typeStdin, 3, []byte("x"), 10)...)
			c.Write(b)
			if resp := readResponse(t, c, 3); len(resp.records) != 1 || resp.status != statusRequestComplete {
				t.Errorf("records %v", resp.records)
			}
			c.Write(makeRecord(typeGetValues, 0, nil, 0)) // still alive
			if rc, err := readRec(c); err != nil || rc.typ != typeGetValuesResult {
				t.Errorf("after abort: %v %v", rc, err)
			}
		})
	}
	select {
	case <-called:
		t.Error("handler was called")
	default:
	}
	ts.noConnErrors(t)
}

// Records for an inactive request id are ignored, as section 3.3 says; the connection goes on.
func TestInactiveIDIgnored(t *testing.T) {
	ts := startServer(t, "unix", echoHandler)
	c := ts.dial(t)
	c.Write(makeRecord(typeStdin, 9, []byte("x"), 0))
	c.Write(makeRecord(typeParams, 9, []byte{1, 1, 'a', 'b'}, 0))
	c.Write(makeRecord(typeData, 9, []byte("y"), 0))
	c.Write(makeRecord(typeStdin, 9, nil, 0))
	c.Write(beginRecord(9, RoleResponder, flagKeepConn)) // the id can still begin a request
	c.Write(stream(typeParams, 9, nil, 1))
	c.Write(stream(typeStdin, 9, []byte("fine"), 10))
	if resp := readResponse(t, c, 9); !bytes.HasSuffix(resp.stdout, []byte("fine")) {
		t.Errorf("stdout %q", resp.stdout)
	}
	ts.noConnErrors(t)
}

// A malformed record closes that connection only, and is reported.
func TestMalformed(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"bad version", []byte{2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, "unsupported version 2"},
		{"truncated header", []byte{1, 1, 0}, "truncated record"},
		{"truncated content", makeRecord(typeBeginRequest, 1, []byte{0, 1, 0, 0, 0, 0, 0, 0}, 0)[:12], "truncated record"},
		{"short begin request", makeRecord(typeBeginRequest, 1, []byte{0, 1, 0}, 0), "FCGI_BEGIN_REQUEST of 3 bytes"},
		{
			"begin for active id",
			append(beginRecord(1, RoleResponder, 1), beginRecord(1, RoleResponder, 1)...),
			"FCGI_BEGIN_REQUEST for active request id 1",
		},
		{
			"stdin before end of params",
			append(beginRecord(1, RoleResponder, 1), makeRecord(typeStdin, 1, []byte("x"), 0)...),
			"FCGI_STDIN before the end of FCGI_PARAMS",
		},
		{
			"malformed params",
			append(beginRecord(1, RoleResponder, 1), stream(typeParams, 1, []byte{5, 1, 'a'}, 100)...),
			"malformed name-value pair",
		},
		{
			"params after end",
			append(append(beginRecord(1, RoleResponder, 1), stream(typeParams, 1, nil, 1)...), makeRecord(typeParams, 1, nil, 0)...),
			"FCGI_PARAMS after the end",
		},
		{"malformed get values", makeRecord(typeGetValues, 0, []byte{9, 0, 'a'}, 0), "FCGI_GET_VALUES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, "unix", echoHandler)
			good := ts.dial(t)
			good.Write(beginRecord(1, RoleResponder, flagKeepConn)) // a request in progress

			bad := ts.dial(t)
			go func() {
				bad.Write(tt.in)
				bad.(*net.UnixConn).CloseWrite()
			}()
			err := ts.nextConnError(t)
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ConnError = %v, want ErrProtocol with %q", err, tt.wantErr)
			}
			expectClosed(t, bad)

			good.Write(stream(typeParams, 1, nil, 1))
			good.Write(stream(typeStdin, 1, []byte("fine"), 10))
			if resp := readResponse(t, good, 1); !bytes.HasSuffix(resp.stdout, []byte("fine")) {
				t.Errorf("other connection: stdout %q", resp.stdout)
			}
		})
	}
}

// A panicking handler closes its connection, is reported, and leaves the
// server running.
func TestHandlerPanic(t *testing.T) {
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		if _, ok := r.Params.Get("PANIC"); ok {
			w.Write([]byte("partial"))
			panic("boom")
		}
		echoHandler(w, r)
	}))
	c := ts.dial(t)
	c.Write(simpleRequest(1, flagKeepConn, map[string]string{"PANIC": "1"}, nil))
	err := ts.nextConnError(t)
	if err == nil || !strings.Contains(err.Error(), "panic serving request 1: boom") {
		t.Errorf("ConnError = %v", err)
	}
	expectClosed(t, c)

	c2 := ts.dial(t)
	c2.Write(simpleRequest(1, flagKeepConn, nil, []byte("alive")))
	if resp := readResponse(t, c2, 1); !bytes.HasSuffix(resp.stdout, []byte("alive")) {
		t.Errorf("stdout %q", resp.stdout)
	}
}

func TestKeepConn(t *testing.T) {
	ts := startServer(t, "unix", echoHandler)
	t.Run("kept", func(t *testing.T) {
		c := ts.dial(t)
		for i := range 5 {
			c.Write(simpleRequest(1, flagKeepConn, nil, fmt.Appendf(nil, "n%d", i)))
			if resp := readResponse(t, c, 1); !bytes.HasSuffix(resp.stdout, fmt.Appendf(nil, "n%d", i)) {
				t.Errorf("request %d: %q", i, resp.stdout)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		c := ts.dial(t)
		c.Write(simpleRequest(1, 0, nil, []byte("once")))
		readResponse(t, c, 1)
		expectClosed(t, c)
	})
	// Without FCGI_KEEP_CONN and with the body unread, the server
	// half-closes and reads until the web server closes.
	t.Run("closed with unread body", func(t *testing.T) {
		ts := startServer(t, "tcp", HandlerFunc(func(w *ResponseWriter, r *Request) { w.Write([]byte("early")) }))
		c := ts.dial(t)
		b := beginRecord(1, RoleResponder, 0)
		b = append(b, stream(typeParams, 1, nil, 1)...)
		b = append(b, makeRecord(typeStdin, 1, []byte("unread"), 0)...)
		c.Write(b)
		if resp := readResponse(t, c, 1); string(resp.stdout) != "early" {
			t.Errorf("stdout %q", resp.stdout)
		}
		expectClosed(t, c) // EOF from the half-close
		c.Write(bytes.Repeat(makeRecord(typeStdin, 1, make([]byte, 1000), 0), 100))
		c.Close()
		ts.noConnErrors(t)
	})
	ts.noConnErrors(t)
}

// A body much larger than the buffer, read slowly, arrives intact; the id's
// later stdin after the handler returned is discarded.
func TestBodyBackpressure(t *testing.T) {
	ts := startServer(t, "tcp", HandlerFunc(func(w *ResponseWriter, r *Request) {
		h := sha256.New()
		buf := make([]byte, 1000)
		for {
			n, err := r.Body.Read(buf)
			h.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Error(err)
				return
			}
			if r.Body.Buffered() > bodyMaxBuffered {
				t.Errorf("buffered %d > %d", r.Body.Buffered(), bodyMaxBuffered)
			}
		}
		fmt.Fprintf(w, "%x", h.Sum(nil))
	}))
	c := ts.dial(t)
	body := make([]byte, 3<<20)
	for i := range body {
		body[i] = byte(i * 7)
	}
	go c.Write(simpleRequest(1, flagKeepConn, nil, body))
	resp := readResponse(t, c, 1)
	if want := fmt.Sprintf("%x", sha256.Sum256(body)); string(resp.stdout) != want {
		t.Errorf("hash %s, want %s", resp.stdout, want)
	}
	ts.noConnErrors(t)
}

// A handler that returns without reading its body does not stall the
// connection: the rest is read and discarded, however large.
func TestUnreadBodyDiscarded(t *testing.T) {
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Write([]byte("Status: 413\r\n\r\n"))
	}))
	c := ts.dial(t)
	b := beginRecord(1, RoleResponder, flagKeepConn)
	b = append(b, stream(typeParams, 1, nil, 1)...)
	c.Write(b)
	big := stream(typeStdin, 1, make([]byte, 2<<20), 65535)
	done := make(chan struct{})
	go func() {
		c.Write(big)
		close(done)
	}()
	readResponse(t, c, 1)
	<-done
	c.Write(makeRecord(typeGetValues, 0, nil, 0))
	if rc, err := readRec(c); err != nil || rc.typ != typeGetValuesResult {
		t.Fatalf("after discarded body: %v %v", rc, err)
	}
	ts.noConnErrors(t)
}

// When the web server goes away, the body fails, the context is canceled,
// and writes fail with ErrConnClosed.
func TestConnDeath(t *testing.T) {
	type result struct {
		readErr, cause, writeErr error
	}
	results := make(chan result, 1)
	started := make(chan struct{})
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		close(started)
		_, readErr := io.ReadAll(r.Body)
		<-r.Context().Done()
		var writeErr error
		for range 10 {
			if _, writeErr = w.Write(make([]byte, 100<<10)); writeErr != nil {
				break
			}
		}
		results <- result{readErr, context.Cause(r.Context()), writeErr}
	}))
	c := ts.dial(t)
	b := beginRecord(1, RoleResponder, flagKeepConn)
	b = append(b, stream(typeParams, 1, nil, 1)...)
	c.Write(b)
	<-started
	c.Close()
	res := <-results
	for name, err := range map[string]error{"read": res.readErr, "cause": res.cause, "write": res.writeErr} {
		if !errors.Is(err, ErrConnClosed) {
			t.Errorf("%s error = %v, want ErrConnClosed", name, err)
		}
	}
	ts.noConnErrors(t)
}

// Abort ends the connection without FCGI_END_REQUEST, after a record on FCGI_STDERR that says
// why and a record header no FastCGI peer can read (version 0), which web servers that take a
// close for the end of the response (nginx without FCGI_KEEP_CONN or unbuffered) treat as an
// upstream error.
func TestResponseAbort(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ts := startServer(t, network, HandlerFunc(func(w *ResponseWriter, r *Request) {
				w.Write([]byte("Status: 200\r\n\r\nhalf"))
				w.Flush()
				w.Abort()
				if _, err := w.Write([]byte("more")); !errors.Is(err, ErrConnClosed) {
					t.Errorf("write after Abort: %v", err)
				}
			}))
			c := ts.dial(t)
			c.Write(simpleRequest(1, flagKeepConn, nil, nil))
			rc, err := readRec(c)
			if err != nil || rc.typ != typeStdout || !bytes.HasSuffix(rc.content, []byte("half")) {
				t.Fatalf("first record %v %v", rc, err)
			}
			rc, err = readRec(c)
			if err != nil || rc.typ != typeStderr || rc.id != 1 || !bytes.Contains(rc.content, []byte("aborted")) {
				t.Fatalf("second record %v %v, want FCGI_STDERR saying the response was aborted", rc, err)
			}
			rest, err := io.ReadAll(c)
			if err != nil || len(rest) != headerLen || rest[0] != 0 {
				t.Errorf("after FCGI_STDERR: % x (%v), want a record header of version 0, then the end", rest, err)
			}
			ts.noConnErrors(t)
		})
	}
}

// Records with padding, one byte at a time.
func TestPaddingAndTinyReads(t *testing.T) {
	var p []byte
	for range 10 {
		p = append(p, nameValuePair11("NAME", "value")...)
	}
	b := beginRecord(1, RoleResponder, 0)
	b = append(b, makeRecord(typeParams, 1, p, 255)...)
	b = append(b, makeRecord(typeParams, 1, nil, 7)...)
	b = append(b, makeRecord(typeStdin, 1, []byte("abc"), 5)...)
	b = append(b, makeRecord(typeStdin, 1, nil, 1)...)
	var srv Server
	var gotLen int
	srv.Handler = HandlerFunc(func(w *ResponseWriter, r *Request) {
		gotLen = r.Params.Len()
		echoHandler(w, r)
	})
	fc := &fakeConn{r: &oneByteReader{b}, hold: true}
	srv.serveRWC(fc, nil)
	resp := readResponse(t, bytes.NewReader(fc.output()), 1)
	if gotLen != 10 || !bytes.HasSuffix(resp.stdout, []byte("abc")) {
		t.Errorf("params %d, stdout %q", gotLen, resp.stdout)
	}
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

// Many requests with fresh ids on one connection.
func TestManyIDs(t *testing.T) {
	ts := startServer(t, "unix", echoHandler)
	c := ts.dial(t)
	for id := uint16(1); id <= 300; id++ {
		c.Write(simpleRequest(id, flagKeepConn, nil, []byte("x")))
		readResponse(t, c, id)
	}
	ts.noConnErrors(t)
}

// Finished requests are swept from the map; one whose body is still
// arriving is kept as ignoreStdin.
func TestSweep(t *testing.T) {
	c := newConn(&Server{}, &fakeConn{r: bytes.NewReader(nil)}, nil)
	mk := func(id uint16, done, stdinDone bool) *request {
		req := newRequest(c, id, RoleResponder, true)
		req.done.Store(done)
		req.stdinDone = stdinDone
		c.reqs[id] = req
		return req
	}
	running := mk(1, false, true)
	mk(2, true, true)
	mk(3, true, false)
	c.reqs[4] = ignoreAll
	c.reqs[5] = ignoreStdin
	c.sweep()
	want := map[uint16]*request{1: running, 3: ignoreStdin, 4: ignoreAll, 5: ignoreStdin}
	if len(c.reqs) != len(want) {
		t.Errorf("map has %d entries, want %d", len(c.reqs), len(want))
	}
	for id, w := range want {
		if c.reqs[id] != w {
			t.Errorf("id %d: wrong entry", id)
		}
	}
	if c.sweepAt != minSweep {
		t.Errorf("sweepAt = %d", c.sweepAt)
	}
}

// Handlers on one connection run concurrently: one blocked handler does not
// hold up another.
func TestConcurrentHandlers(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		if r.ID == 1 {
			<-release
		}
		w.Write([]byte{byte('0' + r.ID)})
	}))
	defer once.Do(func() { close(release) })
	c := ts.dial(t)
	c.Write(simpleRequest(1, flagKeepConn, nil, nil))
	c.Write(simpleRequest(2, flagKeepConn, nil, nil))
	if resp := readResponse(t, c, 2); string(resp.stdout) != "2" {
		t.Errorf("id 2: %q", resp.stdout)
	}
	once.Do(func() { close(release) })
	if resp := readResponse(t, c, 1); string(resp.stdout) != "1" {
		t.Errorf("id 1: %q", resp.stdout)
	}
}

// Large responses of multiplexed requests, written concurrently in many
// small and large writes, interleave as whole records.
func TestMultiplexedLargeResponses(t *testing.T) {
	const size = 1 << 20
	ts := startServer(t, "tcp", HandlerFunc(func(w *ResponseWriter, r *Request) {
		if r.RemoteAddr() == nil || r.RemoteAddr().Network() != "tcp" {
			t.Errorf("RemoteAddr = %v", r.RemoteAddr())
		}
		chunk := bytes.Repeat([]byte{byte(r.ID)}, 70000)
		for sent := 0; sent < size; {
			n := min(size-sent, 1+(sent%3)*35000) // 1, 35001 or 70001 bytes
			n = min(n, len(chunk))
			if _, err := w.Write(chunk[:n]); err != nil {
				t.Error(err)
				return
			}
			sent += n
		}
	}))
	c := ts.dial(t)
	ids := []uint16{1, 2, 3, 4}
	for _, id := range ids {
		c.Write(simpleRequest(id, flagKeepConn, nil, nil))
	}
	resps := readResponses(t, c, ids...)
	for _, id := range ids {
		out := resps[id].stdout
		if len(out) != size || bytes.Count(out, []byte{byte(id)}) != size {
			t.Errorf("id %d: %d bytes, or foreign bytes mixed in", id, len(out))
		}
	}
	ts.noConnErrors(t)
}

// The body's ring of blocks, fed and drained in odd sizes from two
// goroutines, delivers the stream intact and never holds more than its bound
// in memory: the read loop either waits for room (a request alone on its
// connection) or spools the overflow to a file (multiplexed).
func TestBodyRing(t *testing.T) {
	for _, tt := range []struct {
		name  string
		spool bool
	}{
		{"wait for room", false},
		{"spool overflow", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newConn(&Server{}, &fakeConn{r: bytes.NewReader(nil)}, nil)
			var b Body
			b.init()
			b.spoolDir, b.spoolMax = t.TempDir(), 1<<30
			data := make([]byte, 3<<20)
			for i := range data {
				data[i] = byte(i ^ i>>8)
			}
			got := make(chan []byte)
			go func() {
				var out []byte
				buf := make([]byte, 70001)
				for i := 0; ; i++ {
					if tt.spool && i%50 == 0 {
						time.Sleep(time.Millisecond) // a slow reader: the spool fills
					}
					n, err := b.Read(buf[:1+i*7919%len(buf)])
					out = append(out, buf[:n]...)
					if m := b.memBuffered(); m > bodyMaxBuffered {
						t.Errorf("%d bytes in memory", m)
					}
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Error(err)
						break
					}
				}
				got <- out
			}()
			for p, i := data, 0; len(p) > 0; i++ {
				chunk := p[:min(len(p), 1+i*4099%65535)]
				p = p[len(chunk):]
				for len(chunk) > 0 {
					m, err := b.write(chunk)
					if err != nil {
						t.Fatal(err)
					}
					chunk = chunk[m:]
					switch {
					case len(chunk) == 0:
					case tt.spool:
						b.startSpool()
					case !b.waitRoom(c):
						t.Fatal("conn dead")
					}
				}
			}
			b.setEOF()
			if out := <-got; !bytes.Equal(out, data) {
				t.Errorf("stream differs: %d bytes, want %d", len(out), len(data))
			}
		})
	}
}

// memBuffered is what the body holds in memory.
func (b *Body) memBuffered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// A read loop waiting for room in a body wakes up when the connection is
// closed, even though the handler never reads: the handler's context is
// canceled only once the read loop has ended.
func TestCloseWakesBlockedReadLoop(t *testing.T) {
	started := make(chan struct{})
	canceled := make(chan struct{})
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		close(started)
		<-r.Context().Done() // never reads its body
		close(canceled)
	}))
	c := ts.dial(t)
	b := beginRecord(1, RoleResponder, flagKeepConn)
	b = append(b, stream(typeParams, 1, nil, 1)...)
	go func() {
		c.Write(b)
		c.Write(stream(typeStdin, 1, make([]byte, 4<<20), 65535))
	}()
	<-started
	waitForRoomWait(t, ts.Server) // the body is full
	ts.Close()
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("read loop still blocked after Close")
	}
	expectClosed(t, c)
}

// goroutineID is the number runtime.Stack prints for the calling goroutine.
func goroutineID() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(b), "goroutine "), " ")
	return id
}

// Requests sent one after another on a connection run on one handler goroutine, which ends
// when the connection does; requests in progress at once (multiplexed) each get their own.
// A handler that calls runtime.Goexit costs its goroutine and its connection only.
func TestHandlerGoroutineReused(t *testing.T) {
	var mu sync.Mutex
	ids := map[string]int{}
	release := make(chan struct{})
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		mu.Lock()
		ids[goroutineID()]++
		mu.Unlock()
		if _, ok := r.Params.Get("HOLD"); ok {
			<-release
		}
		if _, ok := r.Params.Get("GOEXIT"); ok {
			w.Write([]byte("Status: 200\r\n\r\n"))
			runtime.Goexit()
		}
		echoHandler(w, r)
	}))
	seen := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ids)
	}

	c := ts.dial(t)
	for range 10 {
		c.Write(simpleRequest(1, flagKeepConn, nil, []byte("x")))
		readResponse(t, c, 1)
	}
	if n := seen(); n != 1 {
		t.Errorf("10 requests one after another ran on %d goroutines, want 1: %v", n, ids)
	}
	var first string
	for id := range ids {
		first = id
	}
	c.Close()
	waitUntil(t, "goroutine "+first+" to end after its connection closed", func() bool {
		all := make([]byte, 1<<20)
		all = all[:runtime.Stack(all, true)]
		return !bytes.Contains(all, []byte("goroutine "+first+" ["))
	})

	// Two at once on a second connection.
	mu.Lock()
	clear(ids)
	mu.Unlock()
	c2 := ts.dial(t)
	c2.Write(simpleRequest(1, flagKeepConn, map[string]string{"HOLD": "1"}, nil))
	c2.Write(simpleRequest(2, flagKeepConn, map[string]string{"HOLD": "1"}, nil))
	waitUntil(t, "two requests in progress at once to run on 2 goroutines", func() bool { return seen() == 2 })
	close(release)
	readResponses(t, c2, 1, 2)

	// Goexit ends that request's goroutine and its connection; the server goes on.
	c2.Write(simpleRequest(1, flagKeepConn, map[string]string{"GOEXIT": "1"}, nil))
	expectClosed(t, c2)
	c3 := ts.dial(t)
	c3.Write(simpleRequest(1, flagKeepConn, nil, []byte("after")))
	if resp := readResponse(t, c3, 1); !bytes.HasSuffix(resp.stdout, []byte("after")) {
		t.Errorf("after a Goexit: stdout %q", resp.stdout)
	}
}
