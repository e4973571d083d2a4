//go:build integration

// A FastCGI client written from the specification, record by record, for what no web server
// sends: multiplexed requests, FCGI_GET_VALUES, FCGI_ABORT_REQUEST, unknown record types,
// half-sent records. The tests here drive the real wsgi-fcgi binary with it.

package tests

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// FastCGI record types and protocol statuses (spec section 8).
const (
	fcgiBeginRequest    = 1
	fcgiAbortRequest    = 2
	fcgiEndRequest      = 3
	fcgiParams          = 4
	fcgiStdin           = 5
	fcgiStdout          = 6
	fcgiStderr          = 7
	fcgiGetValues       = 9
	fcgiGetValuesResult = 10
	fcgiUnknownType     = 11

	fcgiRequestComplete = 0
	fcgiCantMpxConn     = 1
	fcgiOverloaded      = 2
	fcgiUnknownRole     = 3

	roleResponder = 1
	roleFilter    = 3
)

// fcgiBegin is FCGI_BEGIN_REQUEST with FCGI_KEEP_CONN as asked.
func fcgiBegin(id uint16, role uint16, keep bool) []byte {
	flags := byte(0)
	if keep {
		flags = 1
	}
	return testkit.Record(fcgiBeginRequest, id, []byte{byte(role >> 8), byte(role), flags, 0, 0, 0, 0, 0}, 0)
}

// fcgiParamsFor is the params stream of a GET or POST of path to the gateway.
func fcgiParamsFor(id uint16, method, path string, bodyLen int) []byte {
	uri, query, _ := strings.Cut(path, "?")
	var p []byte
	for _, kv := range [][2]string{
		{"REQUEST_METHOD", method}, {"REQUEST_URI", path}, {"SCRIPT_NAME", ""}, {"PATH_INFO", uri},
		{"QUERY_STRING", query}, {"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"},
		{"SERVER_PROTOCOL", "HTTP/1.1"}, {"REMOTE_ADDR", "127.0.0.1"}, {"CONTENT_LENGTH", fmt.Sprint(bodyLen)},
	} {
		p = append(p, testkit.Pair(kv[0], kv[1])...)
	}
	return testkit.Stream(fcgiParams, id, p)
}

// fcgiRequest is a whole request: begin, params, body.
func fcgiRequest(id uint16, method, path string, body []byte, keep bool) []byte {
	b := fcgiBegin(id, roleResponder, keep)
	b = append(b, fcgiParamsFor(id, method, path, len(body))...)
	return append(b, testkit.Stream(fcgiStdin, id, body)...)
}

type fcgiRec struct {
	typ     byte
	id      uint16
	content []byte
}

func readFcgiRec(r io.Reader) (fcgiRec, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return fcgiRec{}, err
	}
	if h[0] != 1 {
		return fcgiRec{}, fmt.Errorf("record version %d", h[0])
	}
	b := make([]byte, int(binary.BigEndian.Uint16(h[4:]))+int(h[6]))
	if _, err := io.ReadFull(r, b); err != nil {
		return fcgiRec{}, err
	}
	return fcgiRec{h[1], binary.BigEndian.Uint16(h[2:]), b[:binary.BigEndian.Uint16(h[4:])]}, nil
}

// rawResult is what came back for one request.
type rawResult struct {
	stdout, stderr []byte
	protocolStatus byte
}

// status returns the HTTP status of a CGI response ("Status: 200 OK" → 200; none means 200).
func (r rawResult) status() int {
	head, _, _ := bytes.Cut(r.stdout, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		if v, ok := strings.CutPrefix(line, "Status: "); ok {
			var code int
			fmt.Sscan(v, &code)
			return code
		}
	}
	return 200
}

// body returns the response body after the CGI headers.
func (r rawResult) body() []byte {
	_, b, _ := bytes.Cut(r.stdout, []byte("\r\n\r\n"))
	return b
}

// readRawResults reads records until every id has its FCGI_END_REQUEST.
func readRawResults(t *testing.T, c net.Conn, ids ...uint16) map[uint16]*rawResult {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(reqTimeout))
	defer c.SetReadDeadline(time.Time{})
	out := map[uint16]*rawResult{}
	for _, id := range ids {
		out[id] = &rawResult{}
	}
	for left := len(ids); left > 0; {
		rc, err := readFcgiRec(c)
		if err != nil {
			t.Fatalf("reading the responses of %v: %v", ids, err)
		}
		res, ok := out[rc.id]
		if !ok {
			t.Fatalf("%d record for id %d, not one of %v", rc.typ, rc.id, ids)
		}
		switch rc.typ {
		case fcgiStdout:
			res.stdout = append(res.stdout, rc.content...)
		case fcgiStderr:
			res.stderr = append(res.stderr, rc.content...)
		case fcgiEndRequest:
			res.protocolStatus = rc.content[4]
			left--
		default:
			t.Fatalf("unexpected record type %d", rc.typ)
		}
	}
	return out
}

// dialGateway connects to the gateway; the connection is closed when the test ends.
func dialGateway(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fcgiGet sends one GET on a new connection and returns its result.
func rawGet(t *testing.T, network, addr, path string) rawResult {
	t.Helper()
	c := dialGateway(t, network, addr)
	if _, err := c.Write(fcgiRequest(1, "GET", path, nil, false)); err != nil {
		t.Fatal(err)
	}
	return *readRawResults(t, c, 1)[1]
}

// getValues asks FCGI_GET_VALUES for names and returns the answer.
func getValues(t *testing.T, c net.Conn, names ...string) map[string]string {
	t.Helper()
	var q []byte
	for _, n := range names {
		q = append(q, testkit.Pair(n, "")...)
	}
	c.Write(testkit.Record(fcgiGetValues, 0, q, 0))
	c.SetReadDeadline(time.Now().Add(reqTimeout))
	defer c.SetReadDeadline(time.Time{})
	rc, err := readFcgiRec(c)
	if err != nil || rc.typ != fcgiGetValuesResult {
		t.Fatalf("FCGI_GET_VALUES: got type %d, %v", rc.typ, err)
	}
	out := map[string]string{}
	for b := rc.content; len(b) > 0; {
		nl, vl := int(b[0]), int(b[1]) // the answers are short
		out[string(b[2:2+nl])] = string(b[2+nl : 2+nl+vl])
		b = b[2+nl+vl:]
	}
	return out
}

// The real binary speaks the whole protocol: what it advertises is its configuration, and it
// enforces it; multiplexed requests interleave; an abort stops a running response and frees
// its worker; unknown types and roles get their answers; limits bite with a log line.
func TestProtocol(t *testing.T) {
	g := startGateway(t, gatewayConfig{
		app: "frontapp:application", workers: 2,
		// --drain-timeout: the /slow responses below never end by themselves.
		args: []string{"--drain-timeout", "2s", "--max-conns", "3", "--max-concurrent-requests", "5", "--max-params", "2KiB", "--stall-timeout", "500ms"},
	})

	t.Run("GET_VALUES reflects the configuration", func(t *testing.T) {
		c := dialGateway(t, g.network, g.address)
		got := getValues(t, c, "FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "FCGI_NOT_A_VARIABLE")
		want := map[string]string{"FCGI_MAX_CONNS": "3", "FCGI_MAX_REQS": "5", "FCGI_MPXS_CONNS": "1"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("GET_VALUES_RESULT %v, want %v (unknown names omitted)", got, want)
		}
	})

	t.Run("unknown type and filter role", func(t *testing.T) {
		c := dialGateway(t, g.network, g.address)
		c.Write(testkit.Record(42, 0, []byte("?"), 0))
		rc, err := readFcgiRec(c)
		if err != nil || rc.typ != fcgiUnknownType || rc.content[0] != 42 {
			t.Fatalf("unknown type: got %+v, %v; want FCGI_UNKNOWN_TYPE {42}", rc, err)
		}
		b := fcgiBegin(7, roleFilter, true)
		b = append(b, fcgiParamsFor(7, "GET", "/env", 0)...)
		c.Write(b)
		if res := readRawResults(t, c, 7)[7]; res.protocolStatus != fcgiUnknownRole || len(res.stdout) > 0 {
			t.Errorf("filter role: protocolStatus %d stdout %q, want FCGI_UNKNOWN_ROLE alone", res.protocolStatus, res.stdout)
		}
		g.waitLog(t, "role not served", 5*time.Second)
	})

	t.Run("multiplexed requests interleave", func(t *testing.T) {
		c := dialGateway(t, g.network, g.address)
		// Three requests begun before any ends, their records interleaved; 1's large body
		// arrives last.
		big := bytes.Repeat([]byte("u"), 700<<10)
		var b []byte
		for _, id := range []uint16{1, 2, 3} {
			b = append(b, fcgiBegin(id, roleResponder, true)...)
		}
		b = append(b, fcgiParamsFor(2, "GET", "/env?two", 0)...)
		b = append(b, fcgiParamsFor(1, "POST", "/env?one", len(big))...)
		b = append(b, fcgiParamsFor(3, "GET", "/big?n=300000", 0)...)
		b = append(b, testkit.Stream(fcgiStdin, 3, nil)...)
		b = append(b, testkit.Stream(fcgiStdin, 2, nil)...)
		b = append(b, testkit.Stream(fcgiStdin, 1, big)...)
		go c.Write(b)
		res := readRawResults(t, c, 1, 2, 3)
		for id, want := range map[uint16]string{1: `"QUERY_STRING": "one"`, 2: `"QUERY_STRING": "two"`} {
			if !bytes.Contains(res[id].body(), []byte(want)) {
				t.Errorf("request %d: %q, want %s", id, res[id].stdout, want)
			}
		}
		if !bytes.Contains(res[1].body(), []byte(fmt.Sprintf(`"body_length": %d`, len(big)))) {
			t.Errorf("request 1 body not whole: %s", res[1].body())
		}
		if n := len(res[3].body()); n != 300000 {
			t.Errorf("request 3: %d bytes, want 300000", n)
		}
	})

	// The worker running the aborted /slow (an app that never ends) is not freed by the abort:
	// pyrunner ends an exchange when the app ends, --timeout passes, or 8 MiB of dropped
	// output were read. TestCancel shows a finite app's worker serving again after an abort.
	t.Run("abort stops a running response at once", func(t *testing.T) {
		c := dialGateway(t, g.network, g.address)
		c.Write(fcgiRequest(1, "GET", "/slow", nil, true))
		c.SetReadDeadline(time.Now().Add(reqTimeout))
		if rc, err := readFcgiRec(c); err != nil || rc.typ != fcgiStdout {
			t.Fatalf("no output from /slow: %+v %v", rc, err)
		}
		c.Write(testkit.Record(fcgiAbortRequest, 1, nil, 0))
		// Output stops: FCGI_END_REQUEST arrives (after at most what was in flight).
		for {
			rc, err := readFcgiRec(c)
			if err != nil {
				t.Fatalf("after abort: %v", err)
			}
			if rc.typ == fcgiEndRequest {
				break
			}
		}
		// Output stopped, and the connection goes on.
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if rc, err := readFcgiRec(c); err == nil {
			t.Errorf("record after FCGI_END_REQUEST: %+v", rc)
		}
		c.SetReadDeadline(time.Time{})
		c.Write(fcgiRequest(2, "GET", "/env", nil, true))
		if res := readRawResults(t, c, 2)[2]; res.status() != 200 {
			t.Errorf("after abort: %q", res.stdout)
		}
	})

	t.Run("params over --max-params get 431", func(t *testing.T) {
		c := dialGateway(t, g.network, g.address)
		b := fcgiBegin(1, roleResponder, true)
		b = append(b, testkit.Stream(fcgiParams, 1, testkit.Pair("HTTP_COOKIE", strings.Repeat("c", 4000)))...)
		b = append(b, testkit.Stream(fcgiStdin, 1, nil)...)
		c.Write(b)
		if res := readRawResults(t, c, 1)[1]; res.status() != 431 {
			t.Errorf("status %d, want 431: %q", res.status(), res.stdout)
		}
		g.waitLog(t, "params too large", 5*time.Second)
	})

	t.Run("connections over --max-conns are overloaded", func(t *testing.T) {
		var conns []net.Conn
		for range 3 {
			c := dialGateway(t, g.network, g.address)
			getValues(t, c, "FCGI_MAX_CONNS") // the connection is tracked
			conns = append(conns, c)
		}
		extra := dialGateway(t, g.network, g.address)
		extra.Write(fcgiRequest(1, "GET", "/env", nil, true))
		if res := readRawResults(t, extra, 1)[1]; res.protocolStatus != fcgiOverloaded {
			t.Errorf("4th connection: protocolStatus %d, want FCGI_OVERLOADED", res.protocolStatus)
		}
		g.waitLog(t, "too many connections", 5*time.Second)
		extra.Close()
		for _, c := range conns {
			c.Close()
		}
		// The gateway counts them out as it sees them close.
		deadline := time.Now().Add(5 * time.Second)
		for {
			c := dialGateway(t, g.network, g.address)
			c.Write(fcgiRequest(1, "GET", "/env", nil, false))
			st := readRawResults(t, c, 1)[1].protocolStatus
			c.Close()
			if st == fcgiRequestComplete {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("still overloaded after the connections closed")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("requests over --max-concurrent-requests are overloaded", func(t *testing.T) {
		c := dialGateway(t, g.network, g.address)
		var b []byte
		ids := []uint16{1, 2, 3, 4, 5}
		for _, id := range ids { // five /slow requests in progress: the limit
			b = append(b, fcgiRequest(id, "GET", "/slow", nil, true)...)
		}
		b = append(b, fcgiRequest(6, "GET", "/env", nil, true)...)
		c.Write(b)
		c.SetReadDeadline(time.Now().Add(reqTimeout))
		for {
			rc, err := readFcgiRec(c)
			if err != nil {
				t.Fatal(err)
			}
			if rc.id == 6 && rc.typ == fcgiEndRequest {
				if rc.content[4] != fcgiOverloaded {
					t.Errorf("6th request: protocolStatus %d, want FCGI_OVERLOADED", rc.content[4])
				}
				break
			}
		}
		for _, id := range ids {
			c.Write(testkit.Record(fcgiAbortRequest, id, nil, 0))
		}
		g.waitLog(t, "too many concurrent requests", 5*time.Second)
	})

	t.Run("a record stalled mid-way closes the connection", func(t *testing.T) {
		c := dialGateway(t, g.network, g.address)
		c.Write(fcgiBegin(1, roleResponder, true)[:5])
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read %v, want EOF: the gateway closes the stalled connection", err)
		}
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Errorf("closed after %v, before --stall-timeout", d)
		}
		g.waitLog(t, "stalled", 5*time.Second)
	})
}
