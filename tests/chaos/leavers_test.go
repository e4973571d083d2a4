//go:build integration

package chaos

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testLeavers: clients who leave. Beside a steady load, clients open 30 s event streams on
// the two workers and go away after the first chunk: the web server sends
// FCGI_ABORT_REQUEST, or drops its connection, or an HTTP client closes its connection to
// nginx. Every stream's iterable is closed exactly once, and soon after its client left; an
// abort's FCGI_END_REQUEST comes at once; no worker is lost; the load beside is served
// throughout. Before the request lifecycle was built, each stream held its worker for its 30 s.
func testLeavers(t *testing.T) {
	closedLog := filepath.Join(t.TempDir(), "closed")
	g := startGatewayEnv(t, 2, []string{"CHAOS_CLOSED=" + closedLog})
	n := startNginx(t, g)
	pids := g.workerPIDs()
	s := sample(g.pid())
	tl := newTally()     // the steady load
	leaves := newTally() // the streams: "ok" when the gateway behaved
	var mu sync.Mutex
	left := map[string]time.Time{} // stream id → when its client left
	var ends []time.Duration       // FCGI_ABORT_REQUEST → FCGI_END_REQUEST
	var seq atomic.Int64
	leave := func(int) {
		i := int(seq.Add(1))
		id := "s" + strconv.Itoa(i)
		start, kind := time.Now(), ""
		mark := func() {
			mu.Lock()
			left[id] = time.Now()
			mu.Unlock()
		}
		switch i % 3 {
		case 0, 1: // the web server aborts the request, or drops the connection
			c, err := dial(g.network, g.address)
			if err != nil {
				leaves.add("dial", 0, err.Error())
				return
			}
			defer c.close()
			c.c.SetDeadline(time.Now().Add(40 * time.Second))
			c.c.Write(get("/drip", id).bytes(1, true))
			if rc, err := c.read(); err != nil || rc.typ != typeStdout {
				leaves.add("no first chunk", time.Since(start), fmt.Sprint(rc.typ, err))
				return
			}
			mark()
			if i%3 == 1 {
				break // the deferred close drops it
			}
			aborted := time.Now()
			if kind = c.abort(1); kind == "" {
				mu.Lock()
				ends = append(ends, time.Since(aborted))
				mu.Unlock()
			}
		case 2: // a browser tab closed: the HTTP client leaves nginx
			resp, err := n.client.Get(fmt.Sprintf("%s/stream/drip?%s", n.base, id))
			if err != nil {
				leaves.add("nginx: "+err.Error(), 0, "")
				return
			}
			if _, err := bufio.NewReader(resp.Body).ReadByte(); err != nil || resp.StatusCode != 200 {
				kind = fmt.Sprintf("nginx %d %v", resp.StatusCode, err)
			}
			mark()
			resp.Body.Close()
		}
		leaves.add(kind, time.Since(start), "")
	}

	start := time.Now()
	l := helloLoad(g, tl, 1, "/", "", anyVersion)
	d := goLoad(4, leave)
	time.Sleep(5 * time.Second)
	d.stop()
	l.stop()

	// Every stream whose client left has its iterable closed, once.
	mu.Lock()
	want := len(left)
	mu.Unlock()
	closed := map[string][]float64{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		closed = readClosed(t, closedLog)
		if len(closed) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var lat []time.Duration
	twice := 0
	for id, at := range left {
		times := closed[id]
		if len(times) > 1 {
			twice++
		}
		if len(times) == 0 {
			leaves.add("never closed", 0, id)
			continue
		}
		lat = append(lat, time.Duration((times[0]-float64(at.UnixNano())/1e9)*float64(time.Second)))
	}
	slices.Sort(lat)
	slices.Sort(ends)
	st := g.waitIdle(t, 10*time.Second)
	peak, _ := s.stop()

	r := tl.row("clients who leave", peak, time.Since(start),
		fmt.Sprintf("%d streams left (abort, drop, nginx); close() after the client left: p50 %s, p95 %s, max %s; abort to FCGI_END_REQUEST: max %s; after: %d/%d workers idle",
			want, ms(quantile(lat, 0.5)), ms(quantile(lat, 0.95)), ms(quantile(lat, 1)), ms(quantile(ends, 1)), st.Idle, g.workers))
	r.sent += leaves.count()
	r.ok += leaves.count() - leaves.failed()
	r.failed += leaves.failed()
	if leaves.failed() > 0 {
		r.what = strings.TrimPrefix(r.what+", leaves: "+leaves.what(), ", ")
	}
	report(t, r)
	tl.wantNoFailure(t, "the load beside the leavers")
	leaves.wantNoFailure(t, "the leavers")
	if want < 20 {
		t.Errorf("only %d streams in 5 s: they still hold their workers", want)
	}
	if twice > 0 {
		t.Errorf("%d iterables closed more than once", twice)
	}
	// The bound of issue 17, for an app that yields every 50 ms: close() within 100 ms.
	if p95 := quantile(lat, 0.95); p95 > 100*time.Millisecond {
		t.Errorf("close() ran %s after the client left (p95), want within 100 ms", ms(p95))
	}
	if m := quantile(ends, 1); m > 100*time.Millisecond {
		t.Errorf("FCGI_END_REQUEST came %s after FCGI_ABORT_REQUEST, want within 100 ms", ms(m))
	}
	if after := g.workerPIDs(); !sameSet(pids, after) {
		t.Errorf("workers %v before, %v after: a worker was lost", pids, after)
	}
	g.checkAlive(t)
}

// readClosed reads chaosapp.py's close log: stream id → the times its close() ran.
func readClosed(t *testing.T, path string) map[string][]float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[string][]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		id, at, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(at, 64)
		if err != nil {
			t.Fatalf("close log line %q", line)
		}
		out[id] = append(out[id], f)
	}
	return out
}

// quantile returns the q-quantile of sorted durations (q 1: the largest), or 0.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}
