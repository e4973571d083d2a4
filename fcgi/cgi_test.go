package fcgi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// cgiSeen is what a handler saw of a CGI request.
type cgiSeen struct {
	params []string // "NAME=value", in order
	role   Role
	body   []byte
	err    error // the body's error other than io.EOF
}

// recordingHandler records the request and answers with answer.
func recordingHandler(seen *cgiSeen, answer func(w *ResponseWriter)) Handler {
	return HandlerFunc(func(w *ResponseWriter, r *Request) {
		for name, value := range r.Params.All() {
			seen.params = append(seen.params, string(name)+"="+string(value))
		}
		seen.role = r.Role
		seen.body, seen.err = io.ReadAll(r.Body)
		answer(w)
	})
}

// untouchable is a stdin that fails the test if it is read.
type untouchable struct{ t *testing.T }

func (u untouchable) Read([]byte) (int, error) {
	u.t.Error("stdin read for a request without a body")
	return 0, io.EOF
}

func TestServeCGI(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB: many records, both ways
	tests := []struct {
		name       string
		env        []string
		stdin      func(t *testing.T) io.Reader
		maxParams  int
		answer     func(w *ResponseWriter)
		wantBody   []byte
		wantRest   string // what is left of stdin afterwards ("-": not checked)
		wantStdout []byte
		wantStderr string
	}{
		{
			name:       "GET: params in order, no body read, response as written",
			env:        []string{"GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "QUERY_STRING=a=b=c", "EMPTY="},
			stdin:      func(t *testing.T) io.Reader { return untouchable{t} },
			answer:     func(w *ResponseWriter) { io.WriteString(w, "Status: 200 OK\r\n\r\nhi") },
			wantStdout: []byte("Status: 200 OK\r\n\r\nhi"),
		},
		{
			name:       "CONTENT_LENGTH bounds the body; the rest of stdin is not read",
			env:        []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=5"},
			stdin:      func(*testing.T) io.Reader { return strings.NewReader("hello, more") },
			answer:     func(w *ResponseWriter) { io.WriteString(w, "Status: 204 No Content\r\n\r\n") },
			wantBody:   []byte("hello"),
			wantRest:   ", more",
			wantStdout: []byte("Status: 204 No Content\r\n\r\n"),
		},
		{
			name:       "CONTENT_LENGTH empty: no body",
			env:        []string{"REQUEST_METHOD=GET", "CONTENT_LENGTH="},
			stdin:      func(t *testing.T) io.Reader { return untouchable{t} },
			answer:     func(w *ResponseWriter) {},
			wantStdout: []byte{},
		},
		{
			name:       "a body of unknown length is read to the end of stdin",
			env:        []string{"REQUEST_METHOD=PUT", "HTTP_TRANSFER_ENCODING=chunked"},
			stdin:      func(*testing.T) io.Reader { return strings.NewReader("all of it") },
			answer:     func(w *ResponseWriter) {},
			wantBody:   []byte("all of it"),
			wantStdout: []byte{},
		},
		{
			name:     "a body that ends before its CONTENT_LENGTH is passed on short",
			env:      []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=10"},
			stdin:    func(*testing.T) io.Reader { return strings.NewReader("abc") },
			answer:   func(w *ResponseWriter) {},
			wantBody: []byte("abc"), wantStdout: []byte{},
		},
		{
			name:  "large body and large response",
			env:   []string{"REQUEST_METHOD=POST", fmt.Sprintf("CONTENT_LENGTH=%d", len(big))},
			stdin: func(*testing.T) io.Reader { return bytes.NewReader(big) },
			answer: func(w *ResponseWriter) {
				io.WriteString(w, "Status: 200 OK\r\n\r\n")
				w.Write(big[:100])
				w.Write(big[100:]) // past the buffer: written uncopied, cut into records
			},
			wantBody:   big,
			wantStdout: append([]byte("Status: 200 OK\r\n\r\n"), big...),
		},
		{
			name:  "FCGI_STDERR goes to stderr",
			env:   []string{"REQUEST_METHOD=GET"},
			stdin: func(t *testing.T) io.Reader { return untouchable{t} },
			answer: func(w *ResponseWriter) {
				w.WriteStderr([]byte("a line for the error log\n"))
				io.WriteString(w, "Status: 200 OK\r\n\r\n")
			},
			wantStdout: []byte("Status: 200 OK\r\n\r\n"),
			wantStderr: "a line for the error log\n",
		},
		{
			name:       "params over MaxParamsSize: 431 without the handler",
			env:        []string{"REQUEST_METHOD=GET", "HTTP_COOKIE=" + strings.Repeat("c", 2000)},
			stdin:      func(t *testing.T) io.Reader { return untouchable{t} },
			maxParams:  1000,
			answer:     func(w *ResponseWriter) { t.Error("handler ran") },
			wantStdout: []byte("Status: 431 "), // the package's own answer; its text is limits.go's
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var seen cgiSeen
			stdin := tc.stdin(t)
			var stdout, stderr bytes.Buffer
			srv := &Server{Handler: recordingHandler(&seen, tc.answer), MaxParamsSize: tc.maxParams}
			if err := srv.ServeCGI(context.Background(), tc.env, stdin, &stdout, &stderr); err != nil {
				t.Fatalf("ServeCGI: %v", err)
			}
			got := stdout.Bytes()
			if tc.maxParams > 0 {
				got = got[:min(len(got), len(tc.wantStdout))]
			}
			if !bytes.Equal(got, tc.wantStdout) {
				t.Errorf("stdout %q, want %q", trim(stdout.Bytes()), trim(tc.wantStdout))
			}
			if stderr.String() != tc.wantStderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.wantStderr)
			}
			if tc.maxParams > 0 {
				return
			}
			if strings.Join(seen.params, "\n") != strings.Join(tc.env, "\n") {
				t.Errorf("params %q, want %q", seen.params, tc.env)
			}
			if seen.role != RoleResponder || seen.err != nil || !bytes.Equal(seen.body, tc.wantBody) {
				t.Errorf("role %v, body %q (error %v); want FCGI_RESPONDER, %q", seen.role, trim(seen.body), seen.err, trim(tc.wantBody))
			}
			if sr, ok := stdin.(*strings.Reader); ok && tc.wantRest != "" {
				rest, _ := io.ReadAll(sr)
				if string(rest) != tc.wantRest {
					t.Errorf("stdin left %q, want %q", rest, tc.wantRest)
				}
			}
		})
	}
}

// trim shortens a byte slice for an error message.
func trim(b []byte) string {
	if len(b) > 80 {
		return fmt.Sprintf("%s... (%d bytes)", b[:80], len(b))
	}
	return string(b)
}

// TestServeCGIStreams checks that each flushed chunk reaches stdout while the handler still
// runs: the handler does not write its last chunk until the first has been read.
func TestServeCGIStreams(t *testing.T) {
	pr, pw := io.Pipe()
	firstRead := make(chan struct{})
	srv := &Server{Handler: HandlerFunc(func(w *ResponseWriter, r *Request) {
		io.WriteString(w, "Status: 200 OK\r\n\r\nfirst")
		w.Flush()
		select {
		case <-firstRead:
		case <-time.After(10 * time.Second):
			t.Error("the first chunk never reached stdout")
		}
		io.WriteString(w, "last")
	})}
	done := make(chan error, 1)
	go func() {
		done <- srv.ServeCGI(context.Background(), []string{"REQUEST_METHOD=GET"}, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	want := "Status: 200 OK\r\n\r\nfirst"
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(pr, buf); err != nil || string(buf) != want {
		t.Fatalf("first chunk %q, %v", buf, err)
	}
	close(firstRead)
	rest, _ := io.ReadAll(pr)
	if string(rest) != "last" {
		t.Errorf("then %q, want %q", rest, "last")
	}
	if err := <-done; err != nil {
		t.Errorf("ServeCGI: %v", err)
	}
}

// brokenPipe is a stdout whose reader went away.
type brokenPipe struct{}

func (brokenPipe) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// TestServeCGIStdoutGone checks that a web server that stopped reading fails the handler's
// writes, and ServeCGI reports it.
func TestServeCGIStdoutGone(t *testing.T) {
	var writeErr error
	srv := &Server{Handler: HandlerFunc(func(w *ResponseWriter, r *Request) {
		io.WriteString(w, "Status: 200 OK\r\n\r\n")
		writeErr = w.Flush()
	})}
	err := srv.ServeCGI(context.Background(), []string{"REQUEST_METHOD=GET"}, strings.NewReader(""), brokenPipe{}, io.Discard)
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("ServeCGI: %v, want an error wrapping io.ErrClosedPipe", err)
	}
	if writeErr == nil {
		t.Error("the handler's Flush succeeded")
	}
}

// TestServeCGIUnreadBody checks that a body the handler left unread is read to its end before
// ServeCGI returns (a web server writing it must not see a broken pipe), and that the answer
// is not held back by it.
func TestServeCGIUnreadBody(t *testing.T) {
	pr, pw := io.Pipe() // stdin, written by the web server as the program runs
	answered := make(chan struct{})
	written := make(chan error, 1)
	go func() {
		<-answered // the rest of the body arrives only after the answer
		_, err := pw.Write(make([]byte, 1<<20))
		written <- err
		pw.Close()
	}()
	pout, pwout := io.Pipe()
	srv := &Server{Handler: HandlerFunc(func(w *ResponseWriter, r *Request) {
		io.WriteString(w, "Status: 413 Content Too Large\r\n\r\n")
	})}
	done := make(chan error, 1)
	go func() {
		done <- srv.ServeCGI(context.Background(), []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=1048576"}, pr, pwout, io.Discard)
		pwout.Close()
	}()
	want := "Status: 413 Content Too Large\r\n\r\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(pout, got); err != nil || string(got) != want {
		t.Fatalf("stdout %q, %v", got, err)
	}
	close(answered)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Nothing reads stdin once ServeCGI has returned: the write completes only if it drained.
	select {
	case err := <-written:
		if err != nil {
			t.Errorf("the web server's write of the body: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("ServeCGI returned before the body was read to its end")
	}
}

// TestCGIOutputSplit checks the record decoder with the output cut at every byte.
func TestCGIOutputSplit(t *testing.T) {
	var wire []byte
	wire = append(wire, makeRecord(typeStdout, 1, []byte("Status: 200 OK\r\n\r\n"), 3)...)
	wire = append(wire, makeRecord(typeStderr, 1, []byte("err"), 0)...)
	wire = append(wire, makeRecord(typeStdout, 1, []byte("body"), 7)...)
	wire = append(wire, makeRecord(typeStdout, 1, nil, 0)...)
	wire = appendEndRequest(wire, 1, 0, statusRequestComplete)
	for cut := 0; cut <= len(wire); cut++ {
		var stdout, stderr bytes.Buffer
		o := cgiOutput{stdout: &stdout, stderr: &stderr}
		for _, part := range [][]byte{wire[:cut], wire[cut:]} {
			if n, err := o.Write(part); n != len(part) || err != nil {
				t.Fatalf("cut at %d: Write = %d, %v", cut, n, err)
			}
		}
		if stdout.String() != "Status: 200 OK\r\n\r\nbody" || stderr.String() != "err" {
			t.Errorf("cut at %d: stdout %q stderr %q", cut, stdout.String(), stderr.String())
		}
	}
}

// TestServeCGICanceled checks that cancelling ServeCGI's context ends the request as a web
// server closing the connection does.
func TestServeCGICanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	running := make(chan struct{})
	var cause error
	srv := &Server{Handler: HandlerFunc(func(w *ResponseWriter, r *Request) {
		close(running)
		<-r.Context().Done()
		cause = context.Cause(r.Context())
	})}
	go func() {
		<-running
		cancel()
	}()
	if err := srv.ServeCGI(ctx, []string{"REQUEST_METHOD=GET"}, strings.NewReader(""), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(cause, ErrConnClosed) {
		t.Errorf("the request's context ended with %v, want ErrConnClosed", cause)
	}
}
