//go:build integration

// A FastCGI client written from the specification, record by record: it plays the web server
// for the load (keep-alive connections, one request at a time) and, for the abuse scenarios,
// writes what no web server would.

package chaos

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// Record types and the responder role (FastCGI 1.0, section 8).
const (
	typeBegin        = 1
	typeAbort        = 2
	typeEnd          = 3
	typeParams       = 4
	typeStdin        = 5
	typeStdout       = 6
	typeStderr       = 7
	typeGetValues    = 9
	typeGetValuesRes = 10
	typeUnknown      = 11
	roleResponder    = 1
)

func begin(id uint16, keep bool) []byte {
	flags := byte(0)
	if keep {
		flags = 1
	}
	return testkit.Record(typeBegin, id, []byte{0, roleResponder, flags, 0, 0, 0, 0, 0}, 0)
}

// spec is one request.
type spec struct {
	method, path, query string
	params              [][2]string // more params (HTTP_* headers, ...)
	body                []byte
	noLength            bool // no CONTENT_LENGTH: the gateway must spool the body
}

func get(path, query string) spec { return spec{method: "GET", path: path, query: query} }

// paramsBytes is the content of the request's params stream.
func (s spec) paramsBytes() []byte {
	uri := s.path
	if s.query != "" {
		uri += "?" + s.query
	}
	kv := [][2]string{
		{"REQUEST_METHOD", s.method}, {"REQUEST_URI", uri}, {"SCRIPT_NAME", ""}, {"PATH_INFO", s.path},
		{"QUERY_STRING", s.query}, {"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"},
		{"SERVER_PROTOCOL", "HTTP/1.1"}, {"REMOTE_ADDR", "127.0.0.1"}, {"GATEWAY_INTERFACE", "CGI/1.1"},
	}
	if !s.noLength {
		kv = append(kv, [2]string{"CONTENT_LENGTH", strconv.Itoa(len(s.body))})
	}
	var p []byte
	for _, e := range append(kv, s.params...) {
		p = append(p, testkit.Pair(e[0], e[1])...)
	}
	return p
}

// bytes is the whole request on the wire, with FCGI_KEEP_CONN as keep says.
func (s spec) bytes(id uint16, keep bool) []byte {
	b := begin(id, keep)
	b = append(b, testkit.Stream(typeParams, id, s.paramsBytes())...)
	return append(b, testkit.Stream(typeStdin, id, s.body)...)
}

// result is what came back for one request.
type result struct {
	status      int
	head        string // the CGI header block as sent
	header      textproto.MIMEHeader
	body        []byte
	protoStatus byte
	err         error // no FCGI_END_REQUEST: the connection failed or timed out
	gotBytes    bool  // some of the response arrived before err
	elapsed     time.Duration
}

// kind names a failure for the tables: "" when r is a complete answer with status want.
func (r result) kind(want int) string {
	switch {
	case r.err != nil && r.gotBytes:
		return "cut"
	case r.err != nil && isTimeout(r.err):
		return "timeout"
	case r.err != nil:
		return "conn error"
	case r.protoStatus != 0:
		return fmt.Sprintf("protocol status %d", r.protoStatus)
	case r.status != want:
		return strconv.Itoa(r.status)
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refused reports whether err means the connection was not taken (the listener closed, or the
// gateway closed it without reading).
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF)
}

// parse fills status, header and body from the CGI response in stdout.
func (r *result) parse(stdout []byte) {
	head, body, _ := bytes.Cut(stdout, []byte("\r\n\r\n"))
	r.head, r.body, r.status = string(head), body, 200
	r.header = textproto.MIMEHeader{}
	for _, line := range strings.Split(r.head, "\r\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		r.header.Add(name, value)
		if strings.EqualFold(name, "Status") {
			r.status, _ = strconv.Atoi(strings.Fields(value + " x")[0])
		}
	}
}

// fconn is one FastCGI connection to the gateway.
type fconn struct {
	c net.Conn
	r *bufio.Reader
}

func dial(network, addr string) (*fconn, error) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &fconn{c: c, r: newReader(c)}, nil
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 64<<10) }

func (c *fconn) close() { c.c.Close() }

type rec struct {
	typ     byte
	id      uint16
	content []byte
}

func (c *fconn) read() (rec, error) {
	var h [8]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return rec{}, err
	}
	if h[0] != 1 {
		return rec{}, fmt.Errorf("record version %d", h[0])
	}
	n := int(binary.BigEndian.Uint16(h[4:]))
	b := make([]byte, n+int(h[6]))
	if _, err := io.ReadFull(c.r, b); err != nil {
		return rec{}, err
	}
	return rec{h[1], binary.BigEndian.Uint16(h[2:]), b[:n]}, nil
}

// do sends s as request id on a kept-alive connection and reads its answer, within timeout.
// A large body is written while the answer is read.
func (c *fconn) do(id uint16, s spec, timeout time.Duration) result {
	start := time.Now()
	c.c.SetDeadline(start.Add(timeout))
	defer c.c.SetDeadline(time.Time{})
	req := s.bytes(id, true)
	werr := make(chan error, 1)
	if len(req) > 32<<10 {
		go func() { _, err := c.c.Write(req); werr <- err }()
	} else {
		_, err := c.c.Write(req)
		werr <- err
	}
	r := c.readAnswer(id)
	if err := <-werr; err != nil && r.err == nil && r.status == 0 {
		r.err = err
	}
	r.elapsed = time.Since(start)
	return r
}

// readAnswer reads records until request id's FCGI_END_REQUEST.
func (c *fconn) readAnswer(id uint16) result {
	var r result
	var stdout []byte
	for {
		rc, err := c.read()
		if err != nil {
			r.err, r.gotBytes = err, len(stdout) > 0
			r.parse(stdout)
			return r
		}
		if rc.id != id {
			r.err = fmt.Errorf("record type %d for request %d, want %d", rc.typ, rc.id, id)
			r.gotBytes = true
			return r
		}
		switch rc.typ {
		case typeStdout:
			stdout = append(stdout, rc.content...)
		case typeStderr:
		case typeEnd:
			if len(rc.content) >= 5 {
				r.protoStatus = rc.content[4]
			}
			r.parse(stdout)
			return r
		default:
			r.err, r.gotBytes = fmt.Errorf("unexpected record type %d", rc.typ), true
			return r
		}
	}
}

// client is one web server connection that reconnects after a failure.
type client struct {
	network, addr string
	c             *fconn
}

func newClient(network, addr string) *client { return &client{network: network, addr: addr} }

// do sends s, dialling first if needed; after a failure the connection is dropped.
func (cl *client) do(s spec, timeout time.Duration) result {
	start := time.Now()
	if cl.c == nil {
		c, err := dial(cl.network, cl.addr)
		if err != nil {
			return result{err: err, elapsed: time.Since(start)}
		}
		cl.c = c
	}
	r := cl.c.do(1, s, timeout)
	if r.err != nil {
		cl.close()
	}
	r.elapsed = time.Since(start)
	return r
}

func (cl *client) close() {
	if cl.c != nil {
		cl.c.close()
		cl.c = nil
	}
}

// hello checks an answer of / (or /sleep, /leak): "VERSION PID".
func hello(r result) (version string, pid int, ok bool) {
	v, p, found := strings.Cut(string(r.body), " ")
	if !found {
		return "", 0, false
	}
	pid, err := strconv.Atoi(p)
	return v, pid, err == nil && pid > 0 && pid != os.Getpid()
}

// abort sends FCGI_ABORT_REQUEST for id and reads until its FCGI_END_REQUEST: "" when it came,
// else what went wrong.
func (c *fconn) abort(id uint16) string {
	c.c.Write(testkit.Record(typeAbort, id, nil, 0))
	for {
		rc, err := c.read()
		if err != nil {
			return "abort not ended: " + errClass(err)
		}
		if rc.typ == typeEnd && rc.id == id {
			return ""
		}
	}
}
