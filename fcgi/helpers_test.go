// This file holds the helpers the tests share: record builders that write
// the wire format by hand, a record parser independent of the package's
// reader, tiny fake connections, and a server on a real socket.

package fcgi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// makeRecord builds a record with the given padding, byte by byte.
func makeRecord(t recType, id uint16, content []byte, padding int) []byte {
	b := []byte{1, byte(t), byte(id >> 8), byte(id), byte(len(content) >> 8), byte(len(content)), byte(padding), 0}
	b = append(b, content...)
	return append(b, make([]byte, padding)...)
}

// beginRecord is FCGI_BEGIN_REQUEST for role with flags.
func beginRecord(id uint16, role Role, flags byte) []byte {
	return makeRecord(typeBeginRequest, id, []byte{byte(role >> 8), byte(role), flags, 0, 0, 0, 0, 0}, 0)
}

// nameValuePair11 is a pair with 1-byte lengths.
func nameValuePair11(name, value string) []byte {
	return append([]byte{byte(len(name)), byte(len(value))}, name+value...)
}

// nameValuePair44 is a pair with 4-byte lengths, whatever their size.
func nameValuePair44(name, value string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name))|1<<31)
	b = binary.BigEndian.AppendUint32(b, uint32(len(value))|1<<31)
	return append(b, name+value...)
}

// stream cuts data into records of at most size bytes and ends the stream.
func stream(t recType, id uint16, data []byte, size int) []byte {
	var b []byte
	for len(data) > 0 {
		n := min(len(data), size)
		b = append(b, makeRecord(t, id, data[:n], 0)...)
		data = data[n:]
	}
	return append(b, makeRecord(t, id, nil, 0)...)
}

// simpleRequest is BEGIN, params and body of one request, all streams ended.
func simpleRequest(id uint16, flags byte, params map[string]string, body []byte) []byte {
	var p []byte
	for k, v := range params {
		p = append(p, nameValuePair11(k, v)...)
	}
	b := beginRecord(id, RoleResponder, flags)
	b = append(b, stream(typeParams, id, p, 65535)...)
	return append(b, stream(typeStdin, id, body, 65535)...)
}

// rec is a record as the test parser sees it.
type rec struct {
	typ     recType
	id      uint16
	content []byte
}

func readRec(r io.Reader) (rec, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return rec{}, err
	}
	if h[0] != 1 {
		return rec{}, errors.New("bad version in response")
	}
	n := int(binary.BigEndian.Uint16(h[4:]))
	b := make([]byte, n+int(h[6]))
	if _, err := io.ReadFull(r, b); err != nil {
		return rec{}, err
	}
	return rec{recType(h[1]), binary.BigEndian.Uint16(h[2:]), b[:n]}, nil
}

// response is what came back for one request.
type response struct {
	stdout, stderr []byte
	appStatus      uint32
	status         protocolStatus
	records        []rec
}

// readResponses reads records until every id in ids has its END_REQUEST.
func readResponses(t testing.TB, r io.Reader, ids ...uint16) map[uint16]*response {
	t.Helper()
	out := make(map[uint16]*response)
	for _, id := range ids {
		out[id] = &response{}
	}
	left := len(ids)
	for left > 0 {
		rc, err := readRec(r)
		if err != nil {
			t.Fatalf("reading response: %v", err)
		}
		resp, ok := out[rc.id]
		if !ok {
			t.Fatalf("record %s for unexpected id %d", rc.typ, rc.id)
		}
		resp.records = append(resp.records, rc)
		switch rc.typ {
		case typeStdout:
			resp.stdout = append(resp.stdout, rc.content...)
		case typeStderr:
			resp.stderr = append(resp.stderr, rc.content...)
		case typeEndRequest:
			resp.appStatus = binary.BigEndian.Uint32(rc.content)
			resp.status = protocolStatus(rc.content[4])
			left--
		default:
			t.Fatalf("unexpected record %s", rc.typ)
		}
	}
	return out
}

func readResponse(t testing.TB, r io.Reader, id uint16) *response {
	t.Helper()
	return readResponses(t, r, id)[id]
}

// expectClosed checks that the server closed c.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	for {
		_, err := c.Read(b[:])
		if err == nil {
			continue // discard whatever was sent before the close
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection not closed by server")
		}
		return
	}
}

// fakeConn is a connection whose input is fixed and whose output is kept.
// With hold set, the input does not end until the connection is closed, as
// a web server waits for the response.
type fakeConn struct {
	r    io.Reader
	hold bool

	mu       sync.Mutex
	out      bytes.Buffer
	writes   int
	closed   bool
	closedCh chan struct{}
}

func (c *fakeConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF && c.hold {
		<-c.closedChan()
	}
	return n, err
}

func (c *fakeConn) closedChan() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closedCh == nil {
		c.closedCh = make(chan struct{})
	}
	return c.closedCh
}

func (c *fakeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	c.writes++
	return c.out.Write(p)
}

func (c *fakeConn) Close() error {
	ch := c.closedChan()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(ch)
	}
	return nil
}

func (c *fakeConn) output() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

// countingConn counts the Write calls on a real connection. It hides the
// connection's writev, as any wrapper does.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// testServer is a Server on a unix socket in a temporary directory.
type testServer struct {
	*Server
	network, addr string

	mu       sync.Mutex
	connErrs []error
	errc     chan error
}

// startServer serves h on network ("unix" or "tcp"); configure, if given,
// sets Server fields before serving starts.
func startServer(t testing.TB, network string, h Handler, configure ...func(*Server)) *testServer {
	t.Helper()
	ts := &testServer{Server: &Server{Handler: h}, network: network, errc: make(chan error, 16)}
	for _, f := range configure {
		f(ts.Server)
	}
	ts.ConnError = func(_ net.Addr, err error) {
		ts.mu.Lock()
		ts.connErrs = append(ts.connErrs, err)
		ts.mu.Unlock()
		select {
		case ts.errc <- err:
		default:
		}
	}
	var l net.Listener
	var err error
	switch network {
	case "unix":
		l, err = Listen("unix:" + filepath.Join(t.TempDir(), "fcgi.sock"))
	default:
		l, err = Listen("127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- ts.Serve(l) }()
	t.Cleanup(func() {
		ts.Close()
		if err := <-served; err != ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ts
}

func (ts *testServer) dial(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.Dial(ts.network, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nextConnError waits for a ConnError report.
func (ts *testServer) nextConnError(t *testing.T) error {
	t.Helper()
	select {
	case err := <-ts.errc:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("no ConnError reported")
		return nil
	}
}

func (ts *testServer) noConnErrors(t *testing.T) {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, err := range ts.connErrs {
		t.Errorf("unexpected ConnError: %v", err)
	}
}

// echoHandler answers with a CGI header and the request body.
var echoHandler = HandlerFunc(func(w *ResponseWriter, r *Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.SetAppStatus(1)
		return
	}
	w.Write([]byte("Content-Type: text/plain\r\n\r\n"))
	w.Write(body)
})

// unixPair returns both ends of a new unix socket connection: the accepted one (server) and
// the dialled one (client). The test closes them.
func unixPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if client, err = net.Dial("unix", l.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if server, err = l.Accept(); err != nil {
		client.Close()
		t.Fatal(err)
	}
	return server, client
}

// waitUntil waits for cond to hold, polling it: for state the package
// signals nothing about. It fails the test after 10 s, which only a hang
// reaches; the test's outcome never depends on how long cond takes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 10 s: %s", what)
		}
	}
}

// waitForRoomWait waits until the read loop of one of s's connections waits
// for room in a request's body (Body.waitRoom): the web server is held back.
func waitForRoomWait(t testing.TB, s *Server) {
	t.Helper()
	waitUntil(t, "a read loop waiting for room in a body", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for c := range s.conns {
			if c.waiting.Load() != nil {
				return true
			}
		}
		return false
	})
}
