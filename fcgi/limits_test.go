package fcgi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// refusals collects what Server.Refused reports.
type refusals struct {
	mu   sync.Mutex
	errs []error
}

func (r *refusals) add(_ net.Addr, err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

// has reports whether an error wrapping target was reported.
func (r *refusals) has(target error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Each limit answers as the specification says, reports through Refused,
// and leaves the connections and requests within the limit served.
func TestLimits(t *testing.T) {
	bigParams := bytes.Repeat(nameValuePair44("N", strings.Repeat("v", 1000)), 10) // ~10 KiB
	tests := []struct {
		name      string
		configure func(*Server)
		// busy is the request(s) already in progress on the first
		// connection (id 1, its params ended, its body open).
		busy bool
		// second says whether the refused request comes on a second
		// connection, or on the first.
		second    bool
		refused   []byte
		wantEnd   protocolStatus
		wantOut   string // stdout of the refused request
		wantErr   error
		wantClose bool // the refused request's connection is closed after the answer
	}{
		{
			name:      "FCGI_MAX_REQS over all connections",
			configure: func(s *Server) { s.MaxReqs = 1 },
			busy:      true, second: true,
			refused: simpleRequest(2, flagKeepConn, nil, nil),
			wantEnd: statusOverloaded, wantErr: ErrTooManyRequests,
		},
		{
			name:      "FCGI_MAX_REQS on one connection",
			configure: func(s *Server) { s.MaxReqs = 1 },
			busy:      true,
			refused:   simpleRequest(2, flagKeepConn, nil, nil),
			wantEnd:   statusOverloaded, wantErr: ErrTooManyRequests,
		},
		{
			name:      "FCGI_MAX_CONNS",
			configure: func(s *Server) { s.MaxConns = 1 },
			busy:      true, second: true,
			refused: simpleRequest(2, flagKeepConn, nil, nil),
			wantEnd: statusOverloaded, wantErr: ErrTooManyConns, wantClose: true,
		},
		{
			name:      "no multiplexing",
			configure: func(s *Server) { s.NoMultiplex = true },
			busy:      true,
			refused:   simpleRequest(2, flagKeepConn, nil, nil),
			wantEnd:   statusCantMultiplex, wantErr: ErrCantMultiplex,
		},
		{
			name:      "no multiplexing, second connection is fine",
			configure: func(s *Server) { s.NoMultiplex = true },
			busy:      true, second: true,
			refused: simpleRequest(2, flagKeepConn, nil, []byte("ok")),
			wantEnd: statusRequestComplete, wantOut: "Content-Type: text/plain\r\n\r\nok",
		},
		{
			name:      "params too large",
			configure: func(s *Server) { s.MaxParamsSize = 4096 },
			refused: append(append(beginRecord(2, RoleResponder, flagKeepConn),
				stream(typeParams, 2, bigParams, 3000)...), stream(typeStdin, 2, []byte("x"), 10)...),
			wantEnd: statusRequestComplete, wantOut: "Status: 431 Request Header Fields Too Large\r\n",
			wantErr: ErrParamsTooLarge,
		},
		{
			name:      "params too large without keep-conn",
			configure: func(s *Server) { s.MaxParamsSize = 4096 },
			refused:   append(beginRecord(2, RoleResponder, 0), stream(typeParams, 2, bigParams, 3000)...),
			wantEnd:   statusRequestComplete, wantOut: "Status: 431", wantErr: ErrParamsTooLarge, wantClose: true,
		},
		{
			name:    "filter role",
			refused: append(beginRecord(2, RoleFilter, flagKeepConn), stream(typeParams, 2, nil, 1)...),
			wantEnd: statusUnknownRole, wantErr: ErrUnknownRole,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var refs refusals
			release, released := make(chan struct{}), false
			started := make(chan struct{})
			ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
				if r.ID == 1 {
					close(started)
					<-release
				}
				echoHandler(w, r)
			}), func(s *Server) {
				if tt.configure != nil {
					tt.configure(s)
				}
				s.Refused = refs.add
			})
			first := ts.dial(t)
			if tt.busy {
				first.Write(append(beginRecord(1, RoleResponder, flagKeepConn), stream(typeParams, 1, nil, 1)...))
				<-started
			}
			c := first
			if tt.second {
				c = ts.dial(t)
			}
			c.Write(tt.refused)
			resp := readResponse(t, c, 2)
			if resp.status != tt.wantEnd {
				t.Errorf("protocolStatus %d, want %d", resp.status, tt.wantEnd)
			}
			if !strings.HasPrefix(string(resp.stdout), tt.wantOut) || (tt.wantOut == "" && len(resp.stdout) > 0) {
				t.Errorf("stdout %q, want %q...", resp.stdout, tt.wantOut)
			}
			if tt.wantErr != nil && !refs.has(tt.wantErr) {
				t.Errorf("Refused got %v, want %v", refs.errs, tt.wantErr)
			}
			if tt.wantErr == nil && len(refs.errs) > 0 {
				t.Errorf("Refused called: %v", refs.errs)
			}
			if tt.wantClose {
				expectClosed(t, c)
			} else {
				// The refusing connection still serves (the limit lifted).
				close(release)
				released = true
				if tt.busy {
					first.Write(stream(typeStdin, 1, []byte("one"), 10))
					readResponse(t, first, 1)
				}
				c.Write(simpleRequest(3, flagKeepConn, nil, []byte("three")))
				if resp := readResponse(t, c, 3); !bytes.HasSuffix(resp.stdout, []byte("three")) {
					t.Logf("app %d records %v", resp.appStatus, resp.records)
					t.Errorf("after the refusal: stdout %q", resp.stdout)
				}
			}
			if !released {
				close(release)
			}
			ts.noConnErrors(t)
		})
	}
}

// FCGI_GET_VALUES tells what is enforced.
func TestGetValuesNoMultiplex(t *testing.T) {
	ts := startServer(t, "unix", echoHandler, func(s *Server) { s.NoMultiplex, s.MaxReqs = true, 7 })
	c := ts.dial(t)
	c.Write(makeRecord(typeGetValues, 0, append(nameValuePair11("FCGI_MPXS_CONNS", ""), nameValuePair11("FCGI_MAX_REQS", "")...), 0))
	rc, err := readRec(c)
	if err != nil {
		t.Fatal(err)
	}
	want := append(nameValuePair11("FCGI_MPXS_CONNS", "0"), nameValuePair11("FCGI_MAX_REQS", "7")...)
	if rc.typ != typeGetValuesResult || !bytes.Equal(rc.content, want) {
		t.Errorf("got %s %q, want %q", rc.typ, rc.content, want)
	}
}

// A web server that stops in the middle of a record loses the connection
// after StallTimeout; one idle between records keeps it.
func TestStallTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	tests := []struct {
		name      string
		in        []byte
		wantClose bool
	}{
		{"mid header", []byte{1, 1, 0}, true},
		{"mid content", makeRecord(typeBeginRequest, 1, []byte{0, 1, 0, 0, 0, 0, 0, 0}, 0)[:11], true},
		{"mid padding", makeRecord(typeGetValues, 0, nil, 8)[:10], true},
		{"mid body", append(append(beginRecord(1, RoleResponder, flagKeepConn), stream(typeParams, 1, nil, 1)...),
			makeRecord(typeStdin, 1, make([]byte, 100), 0)[:50]...), true},
		{"idle between records", simpleRequest(1, flagKeepConn, nil, []byte("x")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, "tcp", HandlerFunc(func(w *ResponseWriter, r *Request) {
				io.Copy(io.Discard, r.Body)
			}), func(s *Server) { s.StallTimeout = timeout })
			c := ts.dial(t)
			start := time.Now()
			c.Write(tt.in)
			if !tt.wantClose {
				readResponse(t, c, 1)
				c.SetReadDeadline(time.Now().Add(4 * timeout))
				if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("idle connection: read %v, want our own timeout", err)
				}
				ts.noConnErrors(t)
				return
			}
			err := ts.nextConnError(t)
			if !errors.Is(err, ErrStalled) {
				t.Errorf("ConnError %v, want ErrStalled", err)
			}
			if d := time.Since(start); d < timeout {
				t.Errorf("closed after %v, before the %v timeout", d, timeout)
			}
			expectClosed(t, c)
		})
	}
}

// One request whose handler does not read its large body does not hold up
// the requests multiplexed with it, and memory stays bounded: the overflow
// is spooled. The slow request still gets its whole body later. A web
// server that gives no sign of multiplexing is held back instead.
func TestMultiplexedSlowBody(t *testing.T) {
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 31)
	}
	slow := append(beginRecord(1, RoleResponder, flagKeepConn), stream(typeParams, 1, nameValuePair11("SLOW", "1"), 100)...)
	quick := append(beginRecord(2, RoleResponder, flagKeepConn), stream(typeParams, 2, nil, 100)...)
	quickBody := stream(typeStdin, 2, []byte("quick"), 100)
	askMpx := makeRecord(typeGetValues, 0, nameValuePair11("FCGI_MPXS_CONNS", ""), 0)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name      string
		in        []byte
		heldBack  bool // request 2 waits for request 1's handler
		askedVals bool // a GET_VALUES_RESULT comes first
	}{
		{"both begun, then the big body", cat(slow, quick, stream(typeStdin, 1, big, 65535), quickBody), false, false},
		{"second behind the body, after FCGI_MPXS_CONNS was asked", cat(askMpx, slow, stream(typeStdin, 1, big, 65535), quick, quickBody), false, true},
		{"second behind the body, no sign of multiplexing", cat(slow, stream(typeStdin, 1, big, 65535), quick, quickBody), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
				if _, slow := r.Params.Get("SLOW"); slow {
					<-release
					if m := r.Body.memBuffered(); m > bodyMaxBuffered {
						t.Errorf("slow body holds %d bytes in memory", m)
					}
				}
				echoHandler(w, r)
			}), func(s *Server) { s.SpoolDir = t.TempDir() })
			c := ts.dial(t)
			go c.Write(tt.in)
			if tt.askedVals {
				if rc, err := readRec(c); err != nil || rc.typ != typeGetValuesResult {
					t.Fatalf("got %v %v, want FCGI_GET_VALUES_RESULT", rc, err)
				}
			}
			if tt.heldBack {
				// Request 2 comes behind the body: the read loop waits for
				// request 1's handler to read before it reads further.
				waitForRoomWait(t, ts.Server)
				close(release)
				resps := readResponses(t, c, 1, 2)
				if !bytes.HasSuffix(resps[1].stdout, big) || !bytes.HasSuffix(resps[2].stdout, []byte("quick")) {
					t.Errorf("responses: %d and %q", len(resps[1].stdout), resps[2].stdout)
				}
				ts.noConnErrors(t)
				return
			}
			resp := readResponse(t, c, 2)
			if !bytes.HasSuffix(resp.stdout, []byte("quick")) {
				t.Errorf("request 2: stdout %q", resp.stdout)
			}
			close(release)
			resp = readResponse(t, c, 1)
			if !bytes.HasSuffix(resp.stdout, big) {
				t.Errorf("request 1: %d bytes of stdout, want the %d-byte body back", len(resp.stdout), len(big))
			}
			ts.noConnErrors(t)
		})
	}
}

// A spooled body over MaxSpool fails that request only.
func TestSpoolLimit(t *testing.T) {
	var refs refusals
	readErr := make(chan error, 1)
	release := make(chan struct{})
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		if _, slow := r.Params.Get("SLOW"); slow {
			<-release
			_, err := io.Copy(io.Discard, r.Body)
			readErr <- err
			return
		}
		echoHandler(w, r)
	}), func(s *Server) { s.SpoolDir, s.MaxSpool, s.Refused = t.TempDir(), 1<<20, refs.add })
	c := ts.dial(t)
	var in []byte
	in = append(in, beginRecord(1, RoleResponder, flagKeepConn)...)
	in = append(in, stream(typeParams, 1, nameValuePair11("SLOW", "1"), 100)...)
	in = append(in, beginRecord(2, RoleResponder, flagKeepConn)...)
	in = append(in, stream(typeParams, 2, nil, 100)...)
	in = append(in, stream(typeStdin, 1, make([]byte, 3<<20), 65535)...)
	in = append(in, stream(typeStdin, 2, []byte("quick"), 100)...)
	go c.Write(in)
	if resp := readResponse(t, c, 2); !bytes.HasSuffix(resp.stdout, []byte("quick")) {
		t.Errorf("request 2: stdout %q", resp.stdout)
	}
	close(release)
	if err := <-readErr; !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("slow body: read error %v, want ErrBodyTooLarge", err)
	}
	readResponse(t, c, 1)
	if !refs.has(ErrBodyTooLarge) {
		t.Errorf("Refused got %v, want ErrBodyTooLarge", refs.errs)
	}
	ts.noConnErrors(t)
}

// FCGI_ABORT_REQUEST for a running request stops its output at once: the
// handler's writes fail with ErrRequestAborted, nothing more of its output
// is sent, FCGI_END_REQUEST is, and the connection's other requests go on.
func TestAbortStopsOutput(t *testing.T) {
	writeErr := make(chan error, 1)
	wrote := make(chan struct{})
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		if _, ok := r.Params.Get("ECHO"); ok {
			echoHandler(w, r)
			return
		}
		w.Write([]byte("Content-Type: text/plain\r\n\r\nfirst"))
		w.Flush()
		close(wrote)
		<-r.Context().Done()
		var err error
		for range 100 {
			if _, err = w.Write(bytes.Repeat([]byte("x"), 10000)); err != nil {
				break
			}
		}
		writeErr <- err
		w.Abort() // as gateway does on a cut response: must not close the connection
	}))
	c := ts.dial(t)
	var in []byte
	in = append(in, beginRecord(1, RoleResponder, flagKeepConn)...)
	in = append(in, stream(typeParams, 1, nil, 1)...)
	c.Write(in)
	<-wrote
	c.Write(makeRecord(typeAbortRequest, 1, nil, 0))
	if err := <-writeErr; !errors.Is(err, ErrRequestAborted) {
		t.Errorf("write after abort: %v, want ErrRequestAborted", err)
	}
	resp := readResponse(t, c, 1)
	if string(resp.stdout) != "Content-Type: text/plain\r\n\r\nfirst" {
		t.Errorf("stdout %q: output after the abort was sent", resp.stdout)
	}
	c.Write(simpleRequest(2, flagKeepConn, map[string]string{"ECHO": "1"}, []byte("after")))
	if resp := readResponse(t, c, 2); !bytes.HasSuffix(resp.stdout, []byte("after")) {
		t.Errorf("after the abort: stdout %q", resp.stdout)
	}
	ts.noConnErrors(t)
}

// A queued handler (one waiting on its context, as gateway waits for a
// worker) sees the abort as its context's cause.
func TestAbortWhileQueued(t *testing.T) {
	cause := make(chan error, 1)
	started := make(chan struct{})
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		close(started)
		<-r.Context().Done()
		cause <- context.Cause(r.Context())
	}))
	c := ts.dial(t)
	c.Write(append(beginRecord(1, RoleResponder, flagKeepConn), stream(typeParams, 1, nil, 1)...))
	<-started
	c.Write(makeRecord(typeAbortRequest, 1, nil, 0))
	if err := <-cause; err != ErrRequestAborted {
		t.Errorf("cause %v", err)
	}
	if resp := readResponse(t, c, 1); resp.status != statusRequestComplete || len(resp.stdout) != 0 {
		t.Errorf("END_REQUEST %d, stdout %q", resp.status, resp.stdout)
	}
	ts.noConnErrors(t)
}

// An authorizer request has no FCGI_STDIN (Apache mod_authnz_fcgi sends none): its body is
// complete and empty once the params end, so a handler reading it does not wait.
func TestAuthorizerHasNoBody(t *testing.T) {
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "Status: 200\r\nVariable-USER: alice\r\n\r\n%d %v %v", len(b), err, r.Body.Complete())
	}))
	c := ts.dial(t)
	// No stdin at all, then the same id again with an (ignored) stdin stream.
	c.Write(append(beginRecord(1, RoleAuthorizer, flagKeepConn), stream(typeParams, 1, nil, 1)...))
	if resp := readResponse(t, c, 1); !bytes.HasSuffix(resp.stdout, []byte("\r\n\r\n0 <nil> true")) {
		t.Errorf("stdout %q", resp.stdout)
	}
	c.Write(append(append(beginRecord(1, RoleAuthorizer, flagKeepConn), stream(typeParams, 1, nil, 1)...),
		stream(typeStdin, 1, []byte("ignored"), 10)...))
	if resp := readResponse(t, c, 1); !bytes.HasSuffix(resp.stdout, []byte("0 <nil> true")) {
		t.Errorf("stdout %q", resp.stdout)
	}
	ts.noConnErrors(t)
}

// An abort racing the handler's own end gives exactly one FCGI_END_REQUEST:
// a second one could end the next request that reuses the id.
func TestAbortRacesEnd(t *testing.T) {
	started, step := make(chan struct{}), make(chan struct{})
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		if _, ok := r.Params.Get("RACE"); ok {
			started <- struct{}{}
			<-step
		}
		w.Write([]byte("Status: 200\r\n\r\nx"))
	}))
	c := ts.dial(t)
	const rounds = 200
	for i := range rounds {
		// The handler returns as the abort arrives: before, during or after its end.
		c.Write(simpleRequest(1, flagKeepConn, map[string]string{"RACE": "1"}, nil))
		<-started
		go func() { step <- struct{}{} }()
		c.Write(makeRecord(typeAbortRequest, 1, nil, 0))
		readResponse(t, c, 1)
		// An ordinary request on the same id: a stray END_REQUEST would end it early.
		c.Write(simpleRequest(1, flagKeepConn, nil, nil))
		if resp := readResponse(t, c, 1); string(resp.stdout) != "Status: 200\r\n\r\nx" {
			t.Fatalf("round %d: stdout %q: an END_REQUEST of the aborted request ended this one", i, resp.stdout)
		}
	}
	ts.noConnErrors(t)
}
