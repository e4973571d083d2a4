//go:build integration

// Abuse of the FastCGI socket: hostile records from a generator, a thousand idle connections,
// connections from outside the web server addresses, an app emitting header injections,
// httpoxy, params and bodies over the limits.

package chaos

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

const stall = time.Second // --stall-timeout of the abuse gateways

// hostile is one way to misuse a connection. It writes to c and reads what comes back; it
// returns "closed" or "answered" when the gateway behaved (closed the connection, or answered
// as the protocol says), else what went wrong.
type hostile struct {
	name string
	run  func(c *fconn) string
}

// ending reads until the gateway closes the connection ("closed") or, when answered is
// true, until a record that ends the exchange (FCGI_END_REQUEST, FCGI_UNKNOWN_TYPE,
// FCGI_GET_VALUES_RESULT: "answered"). A connection still open and silent after the stall timeout and a
// margin is "hung".
func ending(c *fconn, answered bool) string {
	c.c.SetReadDeadline(time.Now().Add(stall + 4*time.Second))
	var stdout []byte
	for {
		rc, err := c.read()
		switch {
		case err != nil && isTimeout(err):
			return "hung"
		case err != nil:
			return "closed" // EOF, reset, or a record cut by the close
		case rc.typ == typeStdout:
			stdout = append(stdout, rc.content...)
		case answered && rc.typ == typeEnd && len(stdout) > 0:
			var r result
			r.parse(stdout)
			return fmt.Sprintf("answered %d", r.status)
		case answered && (rc.typ == typeEnd || rc.typ == typeUnknown || rc.typ == typeGetValuesRes):
			return "answered"
		}
	}
}

// expect passes "closed" and an answer with status want; anything else is a failure.
func expect(out string, want int) string {
	if out == "closed" || out == fmt.Sprintf("answered %d", want) {
		return out
	}
	return fmt.Sprintf("%s, want closed or answered %d", out, want)
}

// writeForever writes chunk to c until the write fails or limit bytes went out, in the
// background; it returns how much was written when done.
func writeForever(c *fconn, chunk []byte, limit int) <-chan int {
	done := make(chan int, 1)
	go func() {
		n := 0
		c.c.SetWriteDeadline(time.Now().Add(stall + 4*time.Second))
		for n < limit {
			w, err := c.c.Write(chunk)
			n += w
			if err != nil {
				break
			}
		}
		done <- n
	}()
	return done
}

var hostiles = []hostile{
	{"bad version", func(c *fconn) string {
		b := get("/", "").bytes(1, true)
		b[0] = []byte{0, 2, 255}[rand.IntN(3)]
		c.c.Write(b)
		return ending(c, false)
	}},
	{"length larger than sent", func(c *fconn) string {
		b := begin(1, true)
		b = append(b, 1, typeParams, 0, 1, 0xff, 0xff, 0xff, 0)
		b = append(b, bytes.Repeat([]byte{'p'}, 1000)...)
		c.c.Write(b)
		return ending(c, false)
	}},
	{"truncated header", func(c *fconn) string {
		b := get("/", "").bytes(1, true)
		c.c.Write(b[:1+rand.IntN(7)])
		return ending(c, false)
	}},
	{"truncated header, then half-close", func(c *fconn) string {
		b := begin(1, true)
		c.c.Write(b[:1+rand.IntN(len(b)-1)])
		if uc, ok := c.c.(interface{ CloseWrite() error }); ok {
			uc.CloseWrite()
		}
		return ending(c, false)
	}},
	{"params that never end", func(c *fconn) string {
		c.c.Write(begin(1, true))
		pairs := bytes.Repeat(testkit.Pair("HTTP_X_FILL", strings.Repeat("f", 1000)), 32)
		w := writeForever(c, testkit.Record(typeParams, 1, pairs, 0), 32<<20)
		out := expect(ending(c, true), 431)
		c.close()
		<-w
		return out
	}},
	{"pair length 2 GiB", func(c *fconn) string {
		p := binary.BigEndian.AppendUint32(nil, 0x7fffffff|1<<31)
		p = append(p, 5)
		p = append(p, "HTTP_X"...)
		b := begin(1, true)
		b = append(b, testkit.Record(typeParams, 1, p, 0)...)
		b = append(b, testkit.Record(typeParams, 1, nil, 0)...)
		b = append(b, testkit.Stream(typeStdin, 1, nil)...)
		c.c.Write(b)
		return ending(c, true)
	}},
	{"endless stdin past CONTENT_LENGTH", func(c *fconn) string {
		s := spec{method: "POST", path: "/echo", body: bytes.Repeat([]byte{'e'}, 100)}
		b := begin(1, true)
		b = append(b, testkit.Stream(typeParams, 1, s.paramsBytes())...)
		c.c.Write(b)
		w := writeForever(c, testkit.Record(typeStdin, 1, bytes.Repeat([]byte{'e'}, 32<<10), 0), 32<<20)
		out := expect(ending(c, true), 200)
		c.close()
		<-w
		return out
	}},
	{"endless stdin, no length", func(c *fconn) string {
		s := spec{method: "POST", path: "/echo", noLength: true}
		b := begin(1, true)
		b = append(b, testkit.Stream(typeParams, 1, s.paramsBytes())...)
		c.c.Write(b)
		w := writeForever(c, testkit.Record(typeStdin, 1, bytes.Repeat([]byte{'e'}, 32<<10), 0), 32<<20)
		out := expect(ending(c, true), 413)
		c.close()
		<-w
		return out
	}},
	{"interleaved request ids", func(c *fconn) string {
		// Five requests, their records cut small and shuffled (each request's own order kept).
		var queues [][][]byte
		for id := uint16(1); id <= 5; id++ {
			s := spec{method: "POST", path: "/echo", body: bytes.Repeat([]byte{byte('a' + id)}, int(id)*3000)}
			var q [][]byte
			q = append(q, begin(id, true))
			for _, part := range [][]byte{s.paramsBytes(), s.body} {
				typ := byte(typeParams)
				if len(q) > 1 {
					typ = typeStdin
				}
				for len(part) > 0 {
					n := min(len(part), 1+rand.IntN(700))
					q = append(q, testkit.Record(typ, id, part[:n], rand.IntN(8)))
					part = part[n:]
				}
				q = append(q, testkit.Record(typ, id, nil, 0))
			}
			queues = append(queues, q)
		}
		var b []byte
		for len(queues) > 0 {
			i := rand.IntN(len(queues))
			b = append(b, queues[i][0]...)
			if queues[i] = queues[i][1:]; len(queues[i]) == 0 {
				queues = append(queues[:i], queues[i+1:]...)
			}
		}
		go c.c.Write(b)
		c.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		out := map[uint16][]byte{}
		for left := 5; left > 0; {
			rc, err := c.read()
			if err != nil {
				return "interleaved: " + err.Error()
			}
			switch rc.typ {
			case typeStdout:
				out[rc.id] = append(out[rc.id], rc.content...)
			case typeEnd:
				left--
			}
		}
		for id := uint16(1); id <= 5; id++ {
			n := int(id) * 3000
			want := fmt.Sprintf("%d %d", n, n*int('a'+id))
			var r result
			r.parse(out[id])
			if r.status != 200 || string(r.body) != want {
				return fmt.Sprintf("interleaved: request %d got %d %q, want %q", id, r.status, truncate(r.body), want)
			}
		}
		return "answered"
	}},
	{"duplicate BEGIN", func(c *fconn) string {
		b := begin(1, true)
		b = append(b, begin(1, true)...)
		b = append(b, get("/", "").bytes(1, true)[16:]...)
		c.c.Write(b)
		return ending(c, true)
	}},
	{"stray records", func(c *fconn) string {
		var b []byte
		b = append(b, testkit.Record(typeStdin, 9, []byte("stray"), 0)...)
		b = append(b, testkit.Record(typeParams, 0, testkit.Pair("A", "B"), 0)...)
		b = append(b, testkit.Record(typeAbort, 5, nil, 0)...)
		b = append(b, testkit.Record(typeEnd, 3, make([]byte, 8), 0)...)
		b = append(b, testkit.Record(typeStdout, 4, []byte("out"), 0)...)
		b = append(b, get("/", "").bytes(2, true)...)
		c.c.Write(b)
		return ending(c, true)
	}},
	{"garbage", func(c *fconn) string {
		b := make([]byte, 4096)
		for i := range b {
			b[i] = byte(rand.IntN(256))
		}
		// A version 1 header declaring more than follows: never a complete record.
		b[0], b[4], b[5] = 1, 0xf0, 0
		c.c.Write(b)
		return ending(c, false)
	}},
	{"unknown type, 64 KiB", func(c *fconn) string {
		c.c.Write(testkit.Record(byte(12+rand.IntN(240)), 0, make([]byte, 65535), 255))
		if out := ending(c, true); out != "answered" {
			return out
		}
		r := c.do(1, get("/", ""), 10*time.Second)
		if _, _, ok := hello(r); !ok {
			return fmt.Sprintf("after an unknown type: %d %v", r.status, r.err)
		}
		return "answered"
	}},
	{"short BEGIN", func(c *fconn) string {
		c.c.Write(testkit.Record(typeBegin, 1, []byte{0, 1, 1}, 0))
		c.c.Write(get("/", "").bytes(1, true)[16:])
		return ending(c, true)
	}},
	{"GET_VALUES with a cut pair", func(c *fconn) string {
		c.c.Write(testkit.Record(typeGetValues, 0, []byte{14, 200, 'F', 'C', 'G', 'I'}, 0))
		return ending(c, true)
	}},
	{"empty records, padded", func(c *fconn) string {
		one := testkit.Record(typeStdin, 7, nil, 255)
		w := writeForever(c, bytes.Repeat(one, 256), 2<<20)
		<-w
		r := c.do(2, get("/", ""), 10*time.Second)
		if r.err != nil && !r.gotBytes {
			return "closed"
		}
		if _, _, ok := hello(r); !ok {
			return fmt.Sprintf("after empty records: %d %v", r.status, r.err)
		}
		return "answered"
	}},
}

// abuseGateway starts a gateway with small limits, for the abuse scenarios.
func abuseGateway(t *testing.T, args ...string) *gw {
	return startGateway(t, 2, append([]string{"--stall-timeout", stall.String(), "--max-params", "64KiB",
		"--max-body", "1MiB", "--max-conns", "2000"}, args...)...)
}

// testMalformed: every hostile connection is closed or answered as the protocol says, none
// hangs; a well-formed load beside them does not notice; memory and fds stay bounded.
func testMalformed(t *testing.T) {
	const rounds = 8
	g := abuseGateway(t)
	before := g.usage()
	s := sample(g.pid())
	tl := newTally()
	l := helloLoad(g, tl, 2, "/", "", anyVersion)
	bad := newTally()
	outcomes := newTally() // what each kind got, for the log
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for range rounds {
		for _, h := range hostiles {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				c, err := dial(g.network, g.address)
				if err != nil {
					bad.add(h.name+": dial", 0, err.Error())
					return
				}
				t0 := time.Now()
				out := h.run(c)
				c.close()
				if out == "closed" || strings.HasPrefix(out, "answered") {
					bad.add("", time.Since(t0), "")
					outcomes.add(h.name+": "+out, 0, "")
				} else {
					bad.add(h.name+": "+out, time.Since(t0), out)
				}
			}()
		}
	}
	wg.Wait()
	l.stop()
	after := g.settle(before.fds, 5*time.Second)
	peak, _ := s.stop()
	r := tl.row("hostile records", peak, time.Since(start),
		fmt.Sprintf("%d hostile connections (%d kinds), each closed or answered; gateway %d fds before, %d after",
			bad.count(), len(hostiles), before.fds, after.fds))
	r.sent += bad.count()
	r.ok += bad.count() - bad.failed()
	r.failed += bad.failed()
	if bad.failed() > 0 {
		r.what = strings.TrimPrefix(r.what+", "+bad.what(), ", ")
	}
	report(t, r)
	t.Logf("outcomes: %s", outcomes.what())
	bad.wantNoFailure(t, "hostile connections")
	tl.wantNoFailure(t, "the well-formed load beside them")
	if after.fds > before.fds {
		t.Errorf("gateway fds %d after, %d before", after.fds, before.fds)
	}
	if peak > before.rss+32<<10 {
		t.Errorf("gateway RSS %s → peak %s: want bounded (≤ +32 MiB)", mib(before.rss), mib(peak))
	}
	tl.wantAtLeast(t, 200)
	g.checkAlive(t)
}

// testIdleConns: 1200 idle connections (half of them after a request) are held, cheaply; a
// load beside them is served; they still work; closed, the gateway's fds come back.
func testIdleConns(t *testing.T) {
	const idle = 1200
	g := abuseGateway(t)
	before := g.usage()
	s := sample(g.pid())
	start := time.Now()
	tl := newTally()
	var conns []*fconn
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	for i := range idle {
		c, err := dial(g.network, g.address)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%2 == 1 {
			r := c.do(1, get("/", ""), 10*time.Second)
			tl.add(r.kind(200), r.elapsed, fmt.Sprintf("%d %v", r.status, r.err))
		}
	}
	time.Sleep(500 * time.Millisecond)
	held := g.usage()
	l := helloLoad(g, tl, 2, "/", "", anyVersion)
	time.Sleep(2 * time.Second)
	l.stop()
	// Idle connections are kept: a sample of them serve a request now.
	for i := 0; i < idle; i += idle / 20 {
		r := conns[i].do(3, get("/", ""), 10*time.Second)
		tl.add(r.kind(200), r.elapsed, fmt.Sprintf("idle connection %d: %d %v", i, r.status, r.err))
	}
	for _, c := range conns {
		c.close()
	}
	conns = nil
	after := g.settle(before.fds, 5*time.Second)
	peak, _ := s.stop()
	perConn := float64(held.rss-before.rss) / idle
	report(t, tl.row(fmt.Sprintf("%d idle connections", idle), peak, time.Since(start),
		fmt.Sprintf("gateway %d → %d → %d fds; RSS %s → %s held (%.1f KiB a connection)",
			before.fds, held.fds, after.fds, mib(before.rss), mib(held.rss), perConn)))
	tl.wantNoFailure(t, "requests beside the idle connections")
	// The lower of the counts before and after: a descriptor the gateway had open for a moment
	// when one of them was taken (a worker's /proc file, a spawn's pipe) is not a connection.
	if base := min(before.fds, after.fds); held.fds < base+idle {
		t.Errorf("gateway holds %d fds with %d connections open, %d before and %d after: connections dropped", held.fds, idle, before.fds, after.fds)
	}
	if after.fds > before.fds {
		t.Errorf("gateway fds %d after the connections closed, %d before: %s", after.fds, before.fds, fdList(g.pid()))
	}
	if peak > before.rss+64<<10 {
		t.Errorf("gateway RSS %s → peak %s with %d idle connections: want ≤ +64 MiB", mib(before.rss), mib(peak), idle)
	}
	g.checkAlive(t)
}

// dialFrom connects from the loopback address local.
func dialFrom(local, addr string) (*fconn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &fconn{c: c, r: newReader(c)}, nil
}

// testWebServerAddrs: with --web-server-addrs, and with FCGI_WEB_SERVER_ADDRS, a connection
// from another address is closed unanswered and logged; the web server's is served.
func testWebServerAddrs(t *testing.T) {
	tl := newTally()
	start := time.Now()
	for _, how := range []string{"flag", "env"} {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		var g *gw
		if how == "flag" {
			g = startGateway(t, 1, "--listen", addr, "--web-server-addrs", "127.0.0.2")
		} else {
			g = startGatewayEnv(t, 1, []string{"FCGI_WEB_SERVER_ADDRS=127.0.0.2"}, "--listen", addr)
		}
		// startGateway's own check of the listener came from 127.0.0.1: refused and logged once.
		g.waitLog(t, "connection refused: address not in the web server addresses", 1, 5*time.Second)
		refusedBefore := g.logCount("connection refused: address not in the web server addresses")
		for i := range 40 {
			from := []string{"127.0.0.1", "127.0.0.2"}[i%2]
			c, err := dialFrom(from, addr)
			if err != nil {
				tl.add(how+": dial "+from, 0, err.Error())
				continue
			}
			r := c.do(1, get("/", ""), 5*time.Second)
			c.close()
			kind := ""
			switch {
			case from == "127.0.0.1" && (r.err == nil || r.gotBytes):
				kind = how + ": outsider answered"
			case from == "127.0.0.2":
				if kind = r.kind(200); kind != "" {
					kind = how + ": web server " + kind
				}
			}
			tl.add(kind, r.elapsed, fmt.Sprintf("from %s: %d %v %q", from, r.status, r.err, truncate(r.body)))
		}
		if n := g.logCount("connection refused: address not in the web server addresses") - refusedBefore; n != 20 {
			t.Errorf("%s: %d refusals logged, want 20", how, n)
		}
	}
	report(t, tl.row("web server addresses", 0, time.Since(start),
		"40 connections from 127.0.0.1 closed unanswered and logged, 40 from 127.0.0.2 served (flag and FCGI_WEB_SERVER_ADDRS)"))
	tl.wantNoFailure(t, "web server addresses")
}

// badKinds are chaosapp.py's /bad cases.
var badKinds = []string{"crlf-value", "lf-value", "cr-value", "nul-value", "crlf-name", "colon-name",
	"space-name", "nul-name", "empty-name", "status-crlf", "status-word", "status-short", "status-big", "status-empty"}

// testHeaderInjection: an app's header with CR/LF/NUL, a bad name or a bad status gets a 500 of
// the gateway's own; nothing of the app's headers or body reaches the web server; the worker
// serves on. Checked on the FastCGI wire and through nginx.
func testHeaderInjection(t *testing.T) {
	g := startGateway(t, 2)
	n := startNginx(t, g)
	s := sample(g.pid())
	tl := newTally()
	start := time.Now()
	c := newClient(g.network, g.address)
	defer c.close()
	for round := range 3 {
		for _, k := range badKinds {
			r := c.do(get("/bad", k), 10*time.Second)
			kind := r.kind(500)
			raw := r.head + "\r\n\r\n" + string(r.body)
			if kind == "" && (strings.Contains(raw, "Injected") || strings.Contains(raw, "X-Ok") || strings.Contains(raw, "the app's body")) {
				kind = "app header reached the web server"
			}
			if kind == "" && strings.Count(r.head, "\n")+1 != len(r.header) {
				kind = "malformed header block"
			}
			tl.add(kind, r.elapsed, fmt.Sprintf("%s: %q", k, truncate([]byte(raw))))
			// The worker serves on.
			ok := c.do(get("/", ""), 10*time.Second)
			kind = ok.kind(200)
			tl.add(kind, ok.elapsed, fmt.Sprintf("after %s: %d %v", k, ok.status, ok.err))
			if round == 0 {
				resp, err := n.client.Get(n.base + "/bad?" + k)
				kind = ""
				if err != nil {
					kind = "nginx: " + err.Error()
				} else {
					resp.Body.Close()
					if resp.StatusCode != 500 {
						kind = fmt.Sprintf("nginx %d", resp.StatusCode)
					}
					for name := range resp.Header {
						if strings.Contains(name, "Injected") || name == "X-Ok" {
							kind = "nginx passed " + name
						}
					}
				}
				tl.add(kind, 0, k)
			}
		}
	}
	peak, _ := s.stop()
	// The runner refuses a NUL itself, in start_response (PEP 3333 wants the error raised
	// there): the app's exception is logged; the gateway logs the rest.
	logged := g.logCount("app sent an invalid response header") + g.logCount("app raised an exception")
	report(t, tl.row("header injection", peak, time.Since(start),
		fmt.Sprintf("%d kinds (CR, LF, NUL, bad names and statuses): 500, nothing of the app's reached the web server; %d logged", len(badKinds), logged)))
	tl.wantNoFailure(t, "header injection")
	if want := 4 * len(badKinds); logged < want {
		t.Errorf("%d invalid headers logged, want %d", logged, want)
	}
	g.checkAlive(t)
}

// testHTTPoxy: a client's Proxy header never becomes HTTP_PROXY (httpoxy), through nginx
// (which sends it as HTTP_PROXY) and from a web server that passes the param itself.
func testHTTPoxy(t *testing.T) {
	g := startGateway(t, 1)
	n := startNginx(t, g)
	tl := newTally()
	start := time.Now()
	check := func(where string, status int, body string, err error) {
		kind := ""
		switch {
		case err != nil:
			kind = where + ": " + err.Error()
		case status != 200:
			kind = fmt.Sprintf("%s: %d", where, status)
		case strings.Contains(body, "HTTP_PROXY"):
			kind = where + ": HTTP_PROXY reached the app"
		case !strings.Contains(body, "HTTP_X_CHAOS"):
			kind = where + ": the other header is missing"
		}
		tl.add(kind, 0, body)
	}
	for _, name := range []string{"Proxy", "proxy", "PROXY"} {
		for range 10 {
			req, _ := http.NewRequest("GET", n.base+"/env", nil)
			req.Header[name] = []string{"http://evil.example:8080"}
			req.Header.Set("X-Chaos", "1")
			resp, err := n.client.Do(req)
			if err != nil {
				check("nginx", 0, "", err)
				continue
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			check("nginx", resp.StatusCode, string(b), err)
		}
	}
	c := newClient(g.network, g.address)
	defer c.close()
	for range 10 {
		s := get("/env", "")
		s.params = [][2]string{{"HTTP_PROXY", "http://evil.example:8080"}, {"HTTP_X_CHAOS", "1"}}
		r := c.do(s, 10*time.Second)
		check("FastCGI", r.status, string(r.body), r.err)
	}
	report(t, tl.row("httpoxy", 0, time.Since(start), "Proxy: header (3 spellings) through nginx and HTTP_PROXY param: never in the environ"))
	tl.wantNoFailure(t, "httpoxy")
}

// testOversized: params over --max-params get 431, bodies over --max-body 413, each logged;
// a body at the limit is served; a load beside them does not notice.
func testOversized(t *testing.T) {
	g := abuseGateway(t)
	before := g.usage()
	s := sample(g.pid())
	tl := newTally()
	l := helloLoad(g, tl, 2, "/", "", anyVersion)
	big := newTally()
	start := time.Now()
	manyPairs := make([][2]string, 4000)
	for i := range manyPairs {
		manyPairs[i] = [2]string{"HTTP_X_" + strconv.Itoa(i), strings.Repeat("v", 40)}
	}
	cases := []struct {
		name string
		s    spec
		want int
	}{
		{"one 100 KiB param", spec{method: "GET", path: "/", params: [][2]string{{"HTTP_COOKIE", strings.Repeat("c", 100<<10)}}}, 431},
		{"4000 params", spec{method: "GET", path: "/", params: manyPairs}, 431},
		{"2 MiB body", spec{method: "POST", path: "/echo", body: make([]byte, 2<<20)}, 413},
		{"2 MiB body, no length", spec{method: "POST", path: "/echo", body: make([]byte, 2<<20), noLength: true}, 413},
		{"CONTENT_LENGTH 10 GiB", spec{method: "POST", path: "/echo", params: [][2]string{{"CONTENT_LENGTH", "10737418240"}}, noLength: true}, 413},
		{"1 MiB body (the limit)", spec{method: "POST", path: "/echo", body: bytes.Repeat([]byte{1}, 1<<20)}, 200},
	}
	for range 5 {
		for _, tc := range cases {
			c, err := dial(g.network, g.address)
			if err != nil {
				big.add(tc.name+": dial", 0, err.Error())
				continue
			}
			r := c.do(1, tc.s, 20*time.Second)
			c.close()
			kind := r.kind(tc.want)
			if kind == "" && tc.want == 200 && string(r.body) != fmt.Sprintf("%d %d", 1<<20, 1<<20) {
				kind = "wrong echo"
			}
			if kind != "" {
				kind = tc.name + ": " + kind
			}
			big.add(kind, r.elapsed, fmt.Sprintf("%d %v %q", r.status, r.err, truncate(r.body)))
		}
	}
	l.stop()
	after := g.settle(before.fds, 5*time.Second)
	peak, _ := s.stop()
	params, bodies := g.logCount("params too large"), g.logCount("request body over the limit")
	r := tl.row("oversized params, bodies", peak, time.Since(start),
		fmt.Sprintf("%d over the limits: 431 (params), 413 (bodies); %d and %d logged; 1 MiB body served; %d fds before, %d after",
			big.count()-5, params, bodies, before.fds, after.fds))
	r.sent += big.count()
	r.ok += big.count() - big.failed()
	r.failed += big.failed()
	if big.failed() > 0 {
		r.what = strings.TrimPrefix(r.what+", "+big.what(), ", ")
	}
	report(t, r)
	big.wantNoFailure(t, "oversized requests")
	tl.wantNoFailure(t, "the load beside them")
	if params < 10 || bodies < 15 {
		t.Errorf("logged %d params and %d bodies over the limits, want 10 and 15", params, bodies)
	}
	if after.fds > before.fds {
		t.Errorf("gateway fds %d after, %d before", after.fds, before.fds)
	}
	g.checkAlive(t)
}
