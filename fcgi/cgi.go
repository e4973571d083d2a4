// This file holds ServeCGI: one request of a CGI invocation (RFC 3875) served by the same
// Handler as a FastCGI request, as the FastCGI C library's FCGI_Accept does when the program
// was started by a web server as CGI. The CGI variables, stdin and stdout are presented to the
// connection code as one FastCGI connection carrying one request, so the handler sees exactly
// what a web server's FastCGI request would give it.

package fcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cgiRequestID is the id of the one request of a CGI connection.
const cgiRequestID = 1

// cgiChunk is the most body one FCGI_STDIN record of a CGI connection carries.
const cgiChunk = 32 << 10

// errCGIClosed is what reading a CGI connection returns once it is closed: not io.EOF, which
// would read as a web server that half-closed and still waits for its answers. The connection
// code then fails the request still running, as for a web server that went away.
var errCGIClosed = errors.New("fcgi: CGI connection closed")

// ServeCGI serves the one request of a CGI invocation with s.Handler, in the Responder role,
// and returns when the handler has returned and its output has been written.
//
// env holds the request's CGI variables as "NAME=value" strings (os.Environ's form); each
// becomes a param, in order. The body is read from stdin: CONTENT_LENGTH bytes and never more
// (RFC 3875 section 4.2); with no CONTENT_LENGTH, to the end of stdin when HTTP_TRANSFER_ENCODING
// says the web server sent a body of unknown length, and not at all otherwise. What the
// handler writes (the CGI response, "Status:" line and headers first) goes to stdout as each
// Flush sends it, and what it writes with WriteStderr goes to stderr.
//
// A body the handler left unread is read to its end and dropped before ServeCGI returns, for at
// most 5 seconds, as a FastCGI connection lingers: Apache's mod_cgid fails the response when
// it cannot write the whole body to the program.
//
// Cancelling ctx ends the request as a web server closing its connection does: the handler's
// context is canceled with ErrConnClosed, its body fails and its writes fail.
//
// The error is the first failed write to stdout or stderr (the web server went away), or nil.
// s.MaxParamsSize applies; the other limits concern connections and do not.
func (s *Server) ServeCGI(ctx context.Context, env []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if s.Handler == nil {
		return errors.New("fcgi: Server.Handler is nil")
	}
	c := newCGIConn(env, stdin, stdout, stderr)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s.serveRWC(c, nil)
	c.Close()
	linger := time.NewTimer(lingerTimeout)
	defer linger.Stop()
	select {
	case <-c.pumped:
	case <-linger.C:
	case <-ctx.Done():
	}
	return c.out.err
}

// cgiBody returns the part of stdin that is the request body, or nil when there is none.
func cgiBody(env []string, stdin io.Reader) io.Reader {
	length, hasLength, chunked := "", false, false
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		switch name {
		case "CONTENT_LENGTH":
			length, hasLength = value, value != ""
		case "HTTP_TRANSFER_ENCODING":
			chunked = value != ""
		}
	}
	if hasLength {
		n, err := strconv.ParseInt(length, 10, 64)
		if err != nil || n <= 0 {
			return nil
		}
		return io.LimitReader(stdin, n)
	}
	if chunked {
		return stdin
	}
	return nil
}

// cgiConn is the FastCGI connection a CGI invocation stands for. Reading it yields
// FCGI_BEGIN_REQUEST (without FCGI_KEEP_CONN, so the connection closes after the response),
// the params, and the body from stdin as FCGI_STDIN records; once the body has ended, a read
// waits until the connection is closed, and then fails. Writing it decodes the records the
// connection code writes and passes FCGI_STDOUT to stdout, FCGI_STDERR to stderr.
type cgiConn struct {
	head []byte // the records read before the body: begin and params

	// body delivers FCGI_STDIN records from the pump (pumpBody), the last one empty; nil when
	// the body is empty and that record is in head.
	body     chan []byte
	bodyDone bool
	pumped   chan struct{} // closed when the pump has read the body to its end

	closed    chan struct{}
	closeOnce sync.Once

	out cgiOutput
}

func newCGIConn(env []string, stdin io.Reader, stdout, stderr io.Writer) *cgiConn {
	c := &cgiConn{closed: make(chan struct{}), pumped: make(chan struct{})}
	c.out.stdout, c.out.stderr = stdout, stderr
	b := appendHeader(nil, typeBeginRequest, cgiRequestID, beginBodyLen)
	b = append(b, 0, byte(RoleResponder), 0, 0, 0, 0, 0, 0) // flags 0: no FCGI_KEEP_CONN
	var params []byte
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if ok && name != "" {
			params = appendPair(params, name, value)
		}
	}
	for len(params) > 0 {
		n := min(len(params), maxContent)
		b = appendHeader(b, typeParams, cgiRequestID, n)
		b = append(b, params[:n]...)
		params = params[n:]
	}
	b = appendHeader(b, typeParams, cgiRequestID, 0)
	if body := cgiBody(env, stdin); body != nil {
		c.body = make(chan []byte)
		go c.pumpBody(body)
	} else {
		b = appendHeader(b, typeStdin, cgiRequestID, 0)
		c.bodyDone = true
		close(c.pumped)
	}
	c.head = b
	return c
}

// pumpBody reads the body and hands it to Read as FCGI_STDIN records, ending with the empty
// one; once the connection is closed it reads the rest and drops it. It is the one reader of
// stdin, and ends at the end of the body (a read error ends it too: the handler then finds the
// body shorter than its CONTENT_LENGTH, as when a client goes away).
func (c *cgiConn) pumpBody(body io.Reader) {
	defer close(c.pumped)
	rec := make([]byte, headerLen+cgiChunk)
	closed := false
	for {
		n, err := body.Read(rec[headerLen:])
		if n > 0 && !closed {
			putHeader(rec, typeStdin, cgiRequestID, n)
			select {
			case c.body <- rec[:headerLen+n]:
				rec = make([]byte, headerLen+cgiChunk) // Read holds the last one
			case <-c.closed:
				closed = true
			}
		}
		if err != nil {
			if !closed {
				select {
				case c.body <- appendHeader(nil, typeStdin, cgiRequestID, 0):
				case <-c.closed:
				}
			}
			return
		}
	}
}

// Read implements io.Reader for the connection's read loop.
func (c *cgiConn) Read(p []byte) (int, error) {
	for len(c.head) == 0 {
		if c.bodyDone {
			<-c.closed
			return 0, errCGIClosed
		}
		select {
		case rec := <-c.body:
			c.head = rec
			if len(rec) == headerLen {
				c.bodyDone = true // the empty FCGI_STDIN record
			}
		case <-c.closed:
			return 0, errCGIClosed
		}
	}
	n := copy(p, c.head)
	c.head = c.head[n:]
	return n, nil
}

// Write implements io.Writer for the connection's writes.
func (c *cgiConn) Write(p []byte) (int, error) { return c.out.Write(p) }

// Close ends the connection: reads fail with errCGIClosed.
func (c *cgiConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

// cgiOutput decodes the records the connection code writes, which may be cut anywhere
// between writes, and writes the content of FCGI_STDOUT to stdout and of FCGI_STDERR to
// stderr as it arrives. Other records (FCGI_END_REQUEST) are dropped.
type cgiOutput struct {
	stdout, stderr io.Writer
	err            error // the first write error, sticky

	hdr     [headerLen]byte
	nhdr    int     // bytes of hdr filled
	typ     recType // type of the record whose content is being read
	content int     // content bytes of the current record still to come
	padding int     // padding bytes still to come
}

func (o *cgiOutput) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	total := len(p)
	for len(p) > 0 {
		switch {
		case o.content > 0:
			n := min(o.content, len(p))
			if err := o.pass(p[:n]); err != nil {
				o.err = err
				return 0, err
			}
			o.content -= n
			p = p[n:]
		case o.padding > 0:
			n := min(o.padding, len(p))
			o.padding -= n
			p = p[n:]
		default:
			n := copy(o.hdr[o.nhdr:], p)
			o.nhdr += n
			p = p[n:]
			if o.nhdr < headerLen {
				continue
			}
			var h header
			h.decode(o.hdr[:])
			o.nhdr = 0
			o.typ, o.content, o.padding = h.typ, int(h.contentLen), int(h.paddingLen)
		}
	}
	return total, nil
}

// pass writes the content of the current record where it belongs.
func (o *cgiOutput) pass(b []byte) error {
	var w io.Writer
	switch o.typ {
	case typeStdout:
		w = o.stdout
	case typeStderr:
		w = o.stderr
	default:
		return nil
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("fcgi: CGI %s: %w", o.typ, err)
	}
	return nil
}
