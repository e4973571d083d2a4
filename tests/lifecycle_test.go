//go:build integration

// The request lifecycle (issue 17) with real Python workers: a request the web server gives up
// on stops running (its iterable closed once, its worker kept), --soft-timeout interrupts an
// app stuck in a call and keeps the worker, an app that ignores the interrupt is killed after
// --cancel-grace, a web server that stops reading and an upload that stalls end at --timeout,
// and --max-requests holds under load. tests/apps/lifecycleapp.py logs what it starts and
// closes; the tests wait for those events, not for time.

package tests

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// lifecycleGateway starts the gateway on tests/apps/lifecycleapp.py, its events in a file.
func lifecycleGateway(t *testing.T, workers int, listen string, args ...string) (*gateway, *events) {
	t.Helper()
	ev := &events{path: filepath.Join(t.TempDir(), "events.log")}
	g := startGateway(t, gatewayConfig{app: "lifecycleapp", workers: workers, listen: listen, args: args,
		env: []string{"LIFECYCLE_LOG=" + ev.path}})
	return g, ev
}

// events reads what lifecycleapp.py logged.
type events struct{ path string }

func (e *events) lines() []string {
	b, _ := os.ReadFile(e.path)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// count returns how many lines start with prefix.
func (e *events) count(prefix string) int {
	n := 0
	for _, l := range e.lines() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// exact returns how many lines are line.
func (e *events) exact(line string) int {
	n := 0
	for _, l := range e.lines() {
		if l == line {
			n++
		}
	}
	return n
}

// wait polls until cond holds on the lines, or fails the test after limit.
func (e *events) wait(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s; events:\n%s", limit, what, strings.Join(e.lines(), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidOf asks /pid on a new connection.
func pidOf(t *testing.T, g *gateway) int {
	t.Helper()
	res := rawGet(t, g.network, g.address, "/pid")
	pid, err := strconv.Atoi(strings.TrimSpace(string(res.body())))
	if err != nil || res.status() != 200 {
		t.Fatalf("/pid: %d %q", res.status(), res.stdout)
	}
	return pid
}

// firstOutput sends a GET of path on a new connection and reads until its first FCGI_STDOUT.
func firstOutput(t *testing.T, g *gateway, path string) net.Conn {
	t.Helper()
	c := dialGateway(t, g.network, g.address)
	c.Write(fcgiRequest(1, "GET", path, nil, true))
	c.SetReadDeadline(time.Now().Add(reqTimeout))
	if rc, err := readFcgiRec(c); err != nil || rc.typ != fcgiStdout {
		t.Fatalf("%s: no output: %+v %v", path, rc, err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// reset closes c with a TCP reset (SO_LINGER 0), as a client that crashed.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func TestClientsWhoLeave(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp4", "127.0.0.1"))
	g, ev := lifecycleGateway(t, 2, listen)
	before := g.waitWorkers(t, 2, nil, startTimeout)

	// Two streams of 30 s each hold both workers; their web server aborts them after the
	// first chunk. Two more wait for a worker, get one, and are reset after their first chunk.
	streams := "/stream?n=600&gap=0.05&id="
	c1, c2 := firstOutput(t, g, streams+"a1"), firstOutput(t, g, streams+"a2")
	queued := make(chan net.Conn, 2)
	for _, id := range []string{"r1", "r2"} {
		go func() { queued <- firstOutput(t, g, streams+id) }()
	}
	for _, c := range []net.Conn{c1, c2} {
		c.Write(testkit.Record(fcgiAbortRequest, 1, nil, 0))
		expectPromptEnd(t, c, 1, time.Second)
	}
	reset(<-queued)
	reset(<-queued)

	// Every iterable is closed exactly once, long before its 30 s are up, and no worker was
	// lost: the same two serve on.
	ev.wait(t, "the four streams closed", 10*time.Second, func() bool { return ev.count("close ") >= 4 })
	for _, id := range []string{"a1", "a2", "r1", "r2"} {
		if n := ev.exact("close " + id); n != 1 {
			t.Errorf("stream %s closed %d times, want once", id, n)
		}
	}
	pidOf(t, g)
	if after := g.workerPIDs(); !sameInts(before, after) {
		t.Errorf("workers %v before, %v after: a worker was lost", before, after)
	}
}

func TestSSEClientsLeaveThroughNginx(t *testing.T) {
	g, ev := lifecycleGateway(t, 2, "")
	before := g.waitWorkers(t, 2, nil, startTimeout)
	n := startNginx(t, g.upstream)

	// 20 browser tabs open an event stream and are closed after the first bytes, two at a
	// time served by the two workers, the others waiting their turn.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := n.request(t, "GET", fmt.Sprintf("/stream/events?n=600&gap=0.05&id=t%d", i), nil, 60*time.Second)
			res, err := n.client.Do(req)
			if err != nil {
				t.Errorf("tab %d: %v", i, err)
				return
			}
			if res.StatusCode != 200 {
				t.Errorf("tab %d: status %d", i, res.StatusCode)
			}
			bufio.NewReader(res.Body).ReadByte()
			res.Body.Close() // the tab is closed
		}()
	}
	wg.Wait()
	ev.wait(t, "the 20 streams closed", 30*time.Second, func() bool { return ev.count("close ") >= 20 })
	for i := range 20 {
		if c := ev.exact(fmt.Sprintf("close t%d", i)); c != 1 {
			t.Errorf("stream t%d closed %d times, want once", i, c)
		}
	}
	if after := g.workerPIDs(); !sameInts(before, after) {
		t.Errorf("workers %v before, %v after: a worker was lost", before, after)
	}
}

func TestSoftTimeoutKeepsTheWorker(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		args       []string
	}{
		{"stuck in one call", "/stuck?s=60", nil},
		{"preload", "/stuck?s=60", []string{"--preload"}},
		// In a thread other than the main one, the exception lands between two calls.
		{"threads", "/spin?s=60", []string{"--threads", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, ev := lifecycleGateway(t, 1, "", append([]string{"--soft-timeout", "1s"}, tc.args...)...)
			pid := pidOf(t, g)
			res := rawGet(t, g.network, g.address, tc.path+"&id=k1")
			if res.status() != 504 {
				t.Fatalf("%s with --soft-timeout 1s: %d %q, want 504", tc.path, res.status(), res.stdout)
			}
			ev.wait(t, "the app interrupted, its finally run", 10*time.Second, func() bool { return ev.count("finally k1") == 1 })
			if ev.count("interrupted k1 SoftTimeout") != 1 {
				t.Errorf("the app did not see wsgi_fcgi.SoftTimeout; events: %q", ev.lines())
			}
			if got := pidOf(t, g); got != pid {
				t.Errorf("after the soft timeout pid %d answered, want the same worker %d", got, pid)
			}
		})
	}
}

func TestAppThatIgnoresTheInterruptIsReplaced(t *testing.T) {
	g, ev := lifecycleGateway(t, 1, "", "--soft-timeout", "500ms", "--cancel-grace", "1s")
	old := g.waitWorkers(t, 1, nil, startTimeout)
	res := rawGet(t, g.network, g.address, "/deaf?id=d1&s=60")
	if res.status() != 504 {
		t.Fatalf("/deaf with --soft-timeout: %d %q, want 504", res.status(), res.stdout)
	}
	g.waitLog(t, "did not stop when cancelled", 10*time.Second)
	g.waitWorkers(t, 1, map[int]bool{old[0]: true}, 10*time.Second)
	if ev.count("swallowed d1") == 0 {
		t.Errorf("the app never saw the interrupt; events: %q", ev.lines())
	}
	pidOf(t, g)
}

func TestStalledWebServerAndUpload(t *testing.T) {
	g, ev := lifecycleGateway(t, 1, "", "--timeout", "2s", "--cancel-grace", "5s")
	pid := pidOf(t, g)
	rss := func() int64 {
		kib, err := testkit.StatusField(g.pid(), "VmRSS")
		if err != nil {
			t.Fatal(err)
		}
		return kib
	}
	rssBefore := rss()

	t.Run("a web server that stops reading", func(t *testing.T) {
		c := dialGateway(t, g.network, g.address)
		c.Write(fcgiRequest(1, "GET", "/big?id=b1&n=524288000", nil, true)) // 500 MiB, never read
		// At --timeout the response is cut (the connection closed) and the app stopped: its
		// iterable is closed and the worker serves on.
		ev.wait(t, "the response's iterable closed", 20*time.Second, func() bool { return ev.count("close b1") == 1 })
		if got := pidOf(t, g); got != pid {
			t.Errorf("pid %d answered next, want the same worker %d", got, pid)
		}
		c.SetReadDeadline(time.Now().Add(reqTimeout))
		for { // what was sent before the cut, then the end
			if _, err := readFcgiRec(c); err != nil {
				break
			}
		}
	})
	t.Run("an upload that stalls", func(t *testing.T) {
		c := dialGateway(t, g.network, g.address)
		b := fcgiBegin(1, roleResponder, true)
		b = append(b, fcgiParamsFor(1, "POST", "/upload?id=u1", 1<<20)...)
		part := make([]byte, 100<<10)
		for off := 0; off < len(part); off += 32 << 10 {
			b = append(b, testkit.Record(fcgiStdin, 1, part[off:min(off+32<<10, len(part))], 0)...)
		}
		c.Write(b) // 100 KiB of the 1 MiB, then nothing
		res := readRawResults(t, c, 1)[1]
		if res.status() != 504 {
			t.Errorf("stalled upload: %d %q, want 504 at --timeout", res.status(), res.stdout)
		}
		if got := pidOf(t, g); got != pid {
			t.Errorf("pid %d answered next, want the same worker %d", got, pid)
		}
	})
	if ev.count("start u1") != 1 || ev.count("start b1") != 1 {
		t.Errorf("events: %q", ev.lines())
	}
	if grew := rss() - rssBefore; grew > 32<<10 {
		t.Errorf("the gateway's RSS grew by %d KiB", grew)
	}
}

func TestMaxRequestsUnderLoad(t *testing.T) {
	g, _ := lifecycleGateway(t, 2, "", "--max-requests", "20")
	var mu sync.Mutex
	perPID := map[int]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialGateway(t, g.network, g.address)
			for i := range 40 {
				c.Write(fcgiRequest(uint16(i+1), "GET", "/pid", nil, true))
				res := readRawResults(t, c, uint16(i+1))[uint16(i+1)]
				pid, err := strconv.Atoi(strings.TrimSpace(string(res.body())))
				if err != nil {
					t.Errorf("/pid: %q", res.stdout)
					return
				}
				mu.Lock()
				perPID[pid]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for pid, n := range perPID {
		if n > 20 {
			t.Errorf("pid %d served %d requests, over --max-requests 20: %v", pid, n, perPID)
		}
	}
	if len(perPID) < 12 {
		t.Errorf("240 requests were served by %d workers, want at least 12 with --max-requests 20: %v", len(perPID), perPID)
	}
}
