//go:build integration

// Faults under a steady load: workers killed, reloads (good and broken code), SIGTERM, a route
// that hangs, an app that leaks, a web server that drops connections, more load than the pool
// and its queue hold.

package chaos

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// crashLoopAge: a worker that dies younger counts as a crash loop and its replacement is
// delayed on purpose (docs/process-management.md, "Crash loops"); the kill scenario kills older workers only.
const crashLoopAge = 2 * time.Second

// testKillWorkers: SIGKILL a random worker every 200 ms under load. Only the requests the
// killed workers held fail (502, or a cut response if the answer had begun); the pool is
// whole again within 1 s of each kill.
func testKillWorkers(t *testing.T) {
	const workers = 8
	const runFor = 10 * time.Second
	g := startGateway(t, workers)
	s := sample(g.pid())
	tl := newTally()
	start := time.Now()
	// Half the clients ask /, half /sleep?0.02: a killed worker is often inside a request.
	fast := helloLoad(g, tl, 2, "/", "", anyVersion)
	slow := helloLoad(g, tl, 2, "/sleep", "0.02", anyVersion)

	// The pool as the status page shows it (ready workers, by pid), every 20 ms.
	type poolSample struct {
		at   time.Time
		pids map[int]bool
	}
	var samples []poolSample
	var smu sync.Mutex
	mon := goLoad(1, func(int) {
		st, err := g.statusQuery("json&full")
		if err == nil {
			p := map[int]bool{}
			for _, w := range st.Processes {
				p[w.PID] = true
			}
			smu.Lock()
			samples = append(samples, poolSample{time.Now(), p})
			smu.Unlock()
		}
		time.Sleep(20 * time.Millisecond)
	})

	type kill struct {
		pid int
		at  time.Time
	}
	var kills []kill
	skipped := 0
	tick := time.NewTicker(200 * time.Millisecond)
	for time.Since(start) < runFor {
		<-tick.C
		var old []testkit.Stat
		for _, c := range testkit.Children(g.pid()) {
			if c.Age() > crashLoopAge+500*time.Millisecond {
				old = append(old, c)
			}
		}
		if len(old) == 0 {
			skipped++
			continue
		}
		v := old[rand.IntN(len(old))]
		if err := syscall.Kill(v.PID, syscall.SIGKILL); err == nil {
			kills = append(kills, kill{v.PID, time.Now()})
		}
	}
	tick.Stop()
	time.Sleep(1500 * time.Millisecond) // the last replacement, under load
	fast.stop()
	slow.stop()
	mon.stop()
	peak, _ := s.stop()
	took := time.Since(start)

	// Recovery: each kill is matched, in order, with the next worker that appeared ready
	// after it (kills overlap: six may fall within a second); and after the last kill the
	// pool must be whole.
	firstSeen := map[int]time.Time{}
	var fresh []int // pids in the order they became ready
	for i, sm := range samples {
		for pid := range sm.pids {
			if _, ok := firstSeen[pid]; !ok {
				firstSeen[pid] = sm.at
				if i > 0 {
					fresh = append(fresh, pid)
				}
			}
		}
	}
	slices.SortFunc(fresh, func(a, b int) int { return firstSeen[a].Compare(firstSeen[b]) })
	var worst time.Duration
	var recs []string
	next := 0
	for _, k := range kills {
		for next < len(fresh) && !firstSeen[fresh[next]].After(k.at) {
			next++
		}
		if next == len(fresh) {
			t.Errorf("the worker killed at %v was never replaced", k.at.Sub(start))
			break
		}
		rec := firstSeen[fresh[next]].Sub(k.at)
		next++
		worst = max(worst, rec)
		recs = append(recs, ms(rec))
	}
	whole := time.Duration(-1)
	if len(kills) > 0 {
		last := kills[len(kills)-1]
		for _, sm := range samples {
			if sm.at.After(last.at) && len(sm.pids) == workers && !sm.pids[last.pid] {
				whole = sm.at.Sub(last.at)
				break
			}
		}
	}
	note := fmt.Sprintf("%d kills (%d ticks found no worker past the %v crash-loop age); each replaced within %s; pool whole %s after the last",
		len(kills), skipped, crashLoopAge, ms(worst), ms(whole))
	report(t, tl.row("SIGKILL a worker /200ms", peak, took, note))

	if worst > time.Second {
		t.Errorf("a killed worker took %v to be replaced, want ≤ 1s; after each kill: %v", worst, recs)
	}
	if whole < 0 || whole > time.Second {
		t.Errorf("the pool was whole %v after the last kill, want ≤ 1s", whole)
	}
	if len(kills) < 10 {
		t.Errorf("only %d kills in %v", len(kills), runFor)
	}
	lost := tl.of("502") + tl.of("cut")
	if other := tl.failed() - lost; other > 0 {
		t.Errorf("%d failures other than 502 or a cut response: %s; %s", other, tl.what(), tl.examples())
	}
	if lost > int64(len(kills)) {
		t.Errorf("%d requests failed for %d kills: more than the killed workers held", lost, len(kills))
	}
	tl.wantAtLeast(t, 1000)
	g.checkAlive(t)
}

// errClass names an error for a table: timeout, EOF, reset, or its text.
func errClass(err error) string {
	switch {
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	}
	return err.Error()
}

// versionNumber reads "v7" as 7.
func versionNumber(v string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(v, "v"))
	if err != nil || !strings.HasPrefix(v, "v") {
		return -1
	}
	return n
}

// testReload: five SIGHUPs with new code under load. No request fails; every request sent
// after a reload completed is answered by the new code.
func testReload(t *testing.T) {
	g := startGateway(t, 3)
	s := sample(g.pid())
	tl := newTally()
	var least atomic.Int64 // the oldest version a request sent now may be answered by
	least.Store(1)
	var seen sync.Map
	clients := make([]*client, 4)
	for i := range clients {
		clients[i] = newClient(g.network, g.address)
	}
	start := time.Now()
	l := goLoad(len(clients), func(i int) {
		want := least.Load()
		r := clients[i].do(get("/", ""), 30*time.Second)
		kind := r.kind(200)
		if kind == "" {
			v, _, ok := hello(r)
			switch n := versionNumber(v); {
			case !ok || n < 1:
				kind = "wrong body"
			case int64(n) < want:
				kind = "old code after the reload"
			default:
				seen.Store(n, true)
			}
		}
		tl.add(kind, r.elapsed, fmt.Sprintf("%d %v %q (want v%d or later)", r.status, r.err, truncate(r.body), want))
	})
	l.clients = clients
	var slowest time.Duration
	for v := 2; v <= 6; v++ {
		tl.waitSent(tl.count()+300, 10*time.Second)
		g.setVersion(t, fmt.Sprintf("v%d", v))
		hup := time.Now()
		g.signal(syscall.SIGHUP)
		g.waitLog(t, "reloaded: old workers", v-1, 20*time.Second)
		slowest = max(slowest, time.Since(hup))
		least.Store(int64(v))
	}
	tl.waitSent(tl.count()+300, 10*time.Second)
	l.stop()
	peak, _ := s.stop()
	n := 0
	seen.Range(func(any, any) bool { n++; return true })
	report(t, tl.row("SIGHUP reload ×5", peak, time.Since(start),
		fmt.Sprintf("%d versions served; SIGHUP to new code ≤ %s", n, ms(slowest))))
	tl.wantNoFailure(t, "reloads")
	if n != 6 {
		t.Errorf("%d of the 6 versions answered", n)
	}
	tl.wantAtLeast(t, 1500)
	g.checkAlive(t)
}

// testReloadBroken: SIGHUP with code that raises at import, then with a syntax error: the old
// workers keep serving, no request fails; fixed code then reloads.
func testReloadBroken(t *testing.T) {
	g := startGateway(t, 2)
	s := sample(g.pid())
	before := g.workerPIDs()
	tl := newTally()
	start := time.Now()
	l := helloLoad(g, tl, 4, "/", "", func(v string) bool { return v == "v1" })
	for i, src := range []string{
		"raise ImportError('chaos: half-deployed')\n",
		"VERSION = (\n",
	} {
		time.Sleep(time.Second)
		tl.waitSent(tl.count()+300, 10*time.Second)
		g.writeVersionFile(t, src)
		g.signal(syscall.SIGHUP)
		g.waitLog(t, "reload failed: the old workers keep serving", i+1, 20*time.Second)
	}
	time.Sleep(time.Second)
	tl.waitSent(tl.count()+300, 10*time.Second)
	l.stop()
	// The failed reload's other new worker, retired while it started, may take a moment to go.
	settled := time.Now()
	deadline := settled.Add(5 * time.Second)
	for !sameSet(before, g.workerPIDs()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stray := time.Since(settled)
	if after := g.workerPIDs(); !sameSet(before, after) {
		t.Errorf("workers %v 5 s after the failed reloads, want the same %v: %s", after, before, procList(after))
	}
	if !strings.Contains(g.out.String(), "half-deployed") {
		t.Error("the import error is not in the log")
	}
	// Fixed code reloads.
	g.setVersion(t, "v2")
	g.signal(syscall.SIGHUP)
	g.waitLog(t, "reloaded: old workers", 1, 20*time.Second)
	c := newClient(g.network, g.address)
	defer c.close()
	if r := c.do(get("/", ""), 10*time.Second); !strings.HasPrefix(string(r.body), "v2 ") {
		t.Errorf("after the fixed reload: %d %v %q, want v2", r.status, r.err, r.body)
	}
	peak, _ := s.stop()
	report(t, tl.row("reload of broken code ×2", peak, time.Since(start),
		fmt.Sprintf("old workers kept serving (a retired new one gone within %s); fixed code then reloaded", ms(stray))))
	tl.wantNoFailure(t, "failed reloads")
	tl.wantAtLeast(t, 900)
	g.checkAlive(t)
}

func sameSet(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[int]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

// testSIGTERM: SIGTERM under load, with requests running and queued. Every request the
// gateway took completes (200); a request it did not take is refused (its connection is
// closed before any byte of an answer); the gateway exits 0 within the drain timeout.
func testSIGTERM(t *testing.T) {
	const drain = 10 * time.Second
	g := startGateway(t, 2, "--drain-timeout", drain.String())
	s := sample(g.pid())
	tl := newTally()
	var refusedN, afterSignal atomic.Int64
	var signalled atomic.Bool
	clients := make([]*client, 4)
	for i := range clients {
		clients[i] = newClient(g.network, g.address)
	}
	start := time.Now()
	l := goLoad(len(clients), func(i int) {
		r := clients[i].do(get("/sleep", "0.005"), 30*time.Second)
		if r.err != nil && !r.gotBytes && refused(r.err) && signalled.Load() {
			refusedN.Add(1)
			time.Sleep(10 * time.Millisecond)
			return
		}
		kind := r.kind(200)
		if _, _, ok := hello(r); kind == "" && !ok {
			kind = "wrong body"
		}
		if kind == "" && signalled.Load() {
			afterSignal.Add(1)
		}
		tl.add(kind, r.elapsed, fmt.Sprintf("%d %v %q", r.status, r.err, truncate(r.body)))
	})
	l.clients = clients
	tl.waitSent(500, 10*time.Second)
	// Six one-second requests: two running, four queued when the signal comes.
	held := newTally()
	var hw sync.WaitGroup
	for range 6 {
		hw.Add(1)
		go func() {
			defer hw.Done()
			c := newClient(g.network, g.address)
			defer c.close()
			r := c.do(get("/sleep", "1"), 30*time.Second)
			held.add(r.kind(200), r.elapsed, fmt.Sprintf("%d %v %q", r.status, r.err, truncate(r.body)))
		}()
	}
	time.Sleep(300 * time.Millisecond)
	signalled.Store(true)
	sig := time.Now()
	g.signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(drain + 5*time.Second):
		t.Fatalf("gateway still running %v after SIGTERM", drain+5*time.Second)
	}
	exitAfter := g.waited.Sub(sig)
	l.stop()
	hw.Wait()
	peak, _ := s.stop()
	for _, c := range clients {
		c.close()
	}
	r := tl.row("SIGTERM under load", peak, time.Since(start),
		fmt.Sprintf("exit %d after %s; the 6 held requests done; %d answered and %d refused after the signal",
			g.state.ExitCode(), ms(exitAfter), afterSignal.Load(), refusedN.Load()))
	r.sent += held.count()
	r.ok += held.count() - held.failed()
	r.failed += held.failed()
	if held.failed() > 0 {
		r.what = strings.TrimPrefix(r.what+", held: "+held.what(), ", ")
	}
	report(t, r)
	tl.wantNoFailure(t, "requests taken during the drain")
	held.wantNoFailure(t, "requests running or queued at SIGTERM")
	if !g.state.Success() {
		t.Errorf("exit status after SIGTERM: %v, want 0", g.state)
	}
	if exitAfter > drain {
		t.Errorf("exit %v after SIGTERM, past the %v drain timeout", exitAfter, drain)
	}
}

// testHang: one route never answers. Its requests get 504 at --timeout (±20 %); the other
// route's latency beside them stays what it is alone.
func testHang(t *testing.T) {
	const timeout = time.Second
	g := startGateway(t, 4, "--timeout", timeout.String())
	s := sample(g.pid())
	start := time.Now()

	alone := newTally()
	l := helloLoad(g, alone, 2, "/", "", anyVersion)
	time.Sleep(2 * time.Second)
	l.stop()

	tl := newTally()
	l = helloLoad(g, tl, 2, "/", "", anyVersion)
	hangs := newTally()
	hc := newClient(g.network, g.address)
	var first, last time.Duration
	h := goLoad(1, func(int) {
		r := hc.do(get("/hang", ""), 10*time.Second)
		kind := r.kind(504)
		if kind == "" && (r.elapsed < timeout*8/10 || r.elapsed > timeout*12/10) {
			kind = "504 outside ±20%"
		}
		if kind == "" {
			if first == 0 || r.elapsed < first {
				first = r.elapsed
			}
			last = max(last, r.elapsed)
		}
		hangs.add(kind, r.elapsed, fmt.Sprintf("%d after %v %v", r.status, r.elapsed, r.err))
	})
	time.Sleep(6 * time.Second)
	h.stop()
	l.stop()
	hc.close()
	peak, _ := s.stop()

	p99Alone, p99Beside := alone.quantile(0.99), tl.quantile(0.99)
	r := tl.row("a route that hangs", peak, time.Since(start),
		fmt.Sprintf("%d hung requests: 504 after %s–%s (--timeout %v); p99 of / alone %s, beside them %s",
			hangs.count(), ms(first), ms(last), timeout, ms(p99Alone), ms(p99Beside)))
	r.sent += hangs.count()
	r.ok += hangs.count() - hangs.failed()
	r.failed += hangs.failed()
	if hangs.failed() > 0 {
		r.what = strings.TrimPrefix(r.what+", /hang: "+hangs.what(), ", ")
	}
	report(t, r)
	hangs.wantNoFailure(t, "/hang (want 504 at the timeout ±20%)")
	tl.wantNoFailure(t, "/ beside /hang")
	if hangs.count() < 4 {
		t.Errorf("only %d hung requests", hangs.count())
	}
	// The same latency: within twice the p99 alone, plus 20 ms for the noise of a shared
	// machine (a replacement worker starting after each timeout takes CPU).
	if limit := 2*p99Alone + 20*time.Millisecond; p99Beside > limit {
		t.Errorf("p99 of / beside the hung route %v, alone %v: want ≤ %v", p99Beside, p99Alone, limit)
	}
	tl.wantAtLeast(t, 500)
	g.checkAlive(t)
}

// testLeak: every request leaks 512 KiB in the worker. Workers are recycled at --max-rss with
// no failed request; the gateway's RSS stays flat.
func testLeak(t *testing.T) {
	const maxRSS = 48 << 10 // KiB
	g := startGateway(t, 2, "--max-rss", "48MiB")
	warm := newTally()
	l := helloLoad(g, warm, 2, "/", "", anyVersion)
	warm.waitSent(300, 10*time.Second)
	l.stop()
	base := g.usage()

	s := sample(g.pid())
	tl := newTally()
	var pids sync.Map
	clients := []*client{newClient(g.network, g.address), newClient(g.network, g.address)}
	start := time.Now()
	l = goLoad(len(clients), func(i int) {
		r := clients[i].do(get("/leak", "512"), 30*time.Second)
		kind := r.kind(200)
		if _, pid, ok := hello(r); kind == "" && ok {
			pids.Store(pid, true)
		} else if kind == "" {
			kind = "wrong body"
		}
		tl.add(kind, r.elapsed, fmt.Sprintf("%d %v %q", r.status, r.err, truncate(r.body)))
		time.Sleep(15 * time.Millisecond)
	})
	l.clients = clients
	time.Sleep(8 * time.Second)
	l.stop()
	peak, worker := s.stop()
	recycled := g.logCount("worker over --max-rss")
	n := 0
	pids.Range(func(any, any) bool { n++; return true })
	report(t, tl.row("leaking app, --max-rss", peak, time.Since(start),
		fmt.Sprintf("%d recycles at 48 MiB, %d workers served; largest worker %s; gateway RSS %s before",
			recycled, n, mib(worker), mib(base.rss))))
	tl.wantNoFailure(t, "leaking app")
	if recycled < 2 || n < 4 {
		t.Errorf("%d recycles logged, %d workers answered: want workers recycled at --max-rss", recycled, n)
	}
	// Checked every second, after the running request (and any sent ahead): a worker may pass
	// the limit by what it leaks in up to two seconds, at the rate this run served (512 KiB a
	// request, spread over the two workers).
	perWorker := float64(tl.count()) / time.Since(start).Seconds() / float64(len(clients))
	allowed := maxRSS + int64(2*perWorker*512) // KiB, as worker is
	if worker > allowed {
		t.Errorf("a worker reached %s with --max-rss 48MiB (%s allowed at %.0f requests a second each)", mib(worker), mib(allowed), perWorker)
	}
	if peak > base.rss+8<<10 {
		t.Errorf("gateway RSS %s → peak %s: want flat (≤ +8 MiB)", mib(base.rss), mib(peak))
	}
	g.checkAlive(t)
}

// testDrops: the web server goes away mid-response — nginx's client closes a download, a raw
// connection closes after part of an answer or before any, FCGI_ABORT_REQUEST mid-response —
// beside a steady load that must not notice. Afterwards no worker is stuck and the gateway
// holds no more fds or threads than before.
func testDrops(t *testing.T) {
	const big = 4 << 20
	g := startGateway(t, 2)
	n := startNginx(t, g)
	s := sample(g.pid())
	tl := newTally()    // the steady load
	drops := newTally() // the drops: "ok" when the gateway behaved
	dropOnce := func(i int) {
		kind, start := "", time.Now()
		switch i % 4 {
		case 0: // raw: close after part of the answer
			c, err := dial(g.network, g.address)
			if err != nil {
				drops.add("dial", 0, err.Error())
				return
			}
			c.c.Write(get("/big", strconv.Itoa(big)).bytes(1, true))
			io.CopyN(io.Discard, c.r, rand.Int64N(1<<20))
			c.close()
		case 1: // raw: close before any answer
			c, err := dial(g.network, g.address)
			if err != nil {
				drops.add("dial", 0, err.Error())
				return
			}
			c.c.Write(get("/big", strconv.Itoa(big)).bytes(1, true))
			c.close()
		case 2: // raw: FCGI_ABORT_REQUEST mid-response; the gateway ends the request
			c, err := dial(g.network, g.address)
			if err != nil {
				drops.add("dial", 0, err.Error())
				return
			}
			c.c.SetDeadline(time.Now().Add(10 * time.Second))
			c.c.Write(get("/big", strconv.Itoa(big)).bytes(1, true))
			for got, want := 0, rand.IntN(256<<10); got <= want; { // whole records: the reads below go on
				rc, err := c.read()
				if err != nil {
					break
				}
				got += len(rc.content)
			}
			kind = c.abort(1)
			c.close()
		case 3: // nginx: the HTTP client closes a download part-way
			resp, err := n.client.Get(fmt.Sprintf("%s/stream/big?%d", n.base, big))
			if err != nil {
				drops.add("nginx: "+err.Error(), 0, "")
				return
			}
			if resp.StatusCode != http.StatusOK {
				kind = fmt.Sprintf("nginx %d", resp.StatusCode)
			}
			io.CopyN(io.Discard, resp.Body, rand.Int64N(1<<20))
			resp.Body.Close()
		}
		drops.add(kind, time.Since(start), "")
		time.Sleep(10 * time.Millisecond) // a busy web server, not a connection flood
	}

	// Warm up: the same mix once, so the figures after are against a gateway that has seen it.
	for i := range 8 {
		dropOnce(i)
	}
	g.waitIdle(t, 10*time.Second)
	before := g.settle(0, time.Second)

	start := time.Now()
	l := helloLoad(g, tl, 1, "/", "", anyVersion)
	d := goLoad(4, dropOnce)
	time.Sleep(5 * time.Second)
	d.stop()
	l.stop()
	st := g.waitIdle(t, 10*time.Second)
	after := g.settle(before.fds, 5*time.Second)
	peak, _ := s.stop()

	r := tl.row("web server drops mid-response", peak, time.Since(start),
		fmt.Sprintf("%d drops (nginx, close, abort); after: %d/%d workers idle; gateway %d fds, %d threads before, %d, %d after",
			drops.count(), st.Idle, g.workers, before.fds, before.threads, after.fds, after.threads))
	r.sent += drops.count()
	r.ok += drops.count() - drops.failed()
	r.failed += drops.failed()
	if drops.failed() > 0 {
		r.what = strings.TrimPrefix(r.what+", drops: "+drops.what(), ", ")
	}
	report(t, r)
	tl.wantNoFailure(t, "the load beside the drops")
	drops.wantNoFailure(t, "the drops")
	if drops.count() < 40 {
		t.Errorf("only %d drops", drops.count())
	}
	if after.fds > before.fds {
		t.Errorf("the gateway holds %d fds after the drops, %d before: a leak", after.fds, before.fds)
	}
	// Go may start a thread for a blocking system call and keep it; more than a few is a leak.
	if after.threads > before.threads+3 {
		t.Errorf("the gateway has %d threads after the drops, %d before", after.threads, before.threads)
	}
	g.checkAlive(t)
}

// testOverload: more clients than workers and queue. The surplus gets 503 with Retry-After
// within --queue-timeout; admitted requests wait at most the queue timeout; memory stays flat.
func testOverload(t *testing.T) {
	const queueTimeout = 500 * time.Millisecond
	const service = 50 * time.Millisecond
	g := startGateway(t, 2, "--queue-size", "4", "--queue-timeout", queueTimeout.String())
	warm := newTally()
	l := helloLoad(g, warm, 2, "/", "", anyVersion)
	warm.waitSent(200, 10*time.Second)
	l.stop()
	base := g.usage()

	s := sample(g.pid())
	tl := newTally()
	var admitted, shed atomic.Int64
	var slowest503 atomic.Int64
	const clients = 20
	cl := make([]*client, clients)
	for i := range cl {
		cl[i] = newClient(g.network, g.address)
	}
	start := time.Now()
	l = goLoad(clients, func(i int) {
		r := cl[i].do(get("/sleep", fmt.Sprint(service.Seconds())), 30*time.Second)
		kind := r.kind(200)
		switch {
		case kind == "503" && r.header.Get("Retry-After") == "":
			kind = "503 without Retry-After"
		case kind == "503" && r.elapsed > queueTimeout+200*time.Millisecond:
			kind = "503 past the queue timeout"
		case kind == "503":
			kind = ""
			shed.Add(1)
			for {
				old := slowest503.Load()
				if int64(r.elapsed) <= old || slowest503.CompareAndSwap(old, int64(r.elapsed)) {
					break
				}
			}
			tl.add("", 0, "") // a correct answer; its latency is not an admitted one
			time.Sleep(10 * time.Millisecond)
			return
		case kind == "" && r.elapsed > queueTimeout+service+250*time.Millisecond:
			kind = "200 too late"
		case kind == "":
			admitted.Add(1)
		}
		tl.add(kind, r.elapsed, fmt.Sprintf("%d after %v %v", r.status, r.elapsed, r.err))
	})
	l.clients = cl
	time.Sleep(5 * time.Second)
	l.stop()
	peak, _ := s.stop()
	p99 := tl.quantileAbove(0.99, 0)
	rw := tl.row("overload: 20 clients, 2 workers, queue 4", peak, time.Since(start),
		fmt.Sprintf("%d admitted (p99 %s), %d got 503 + Retry-After (slowest %s; --queue-timeout %v); gateway RSS %s before",
			admitted.Load(), ms(p99), shed.Load(), ms(time.Duration(slowest503.Load())), queueTimeout, mib(base.rss)))
	rw.p99 = p99
	report(t, rw)
	tl.wantNoFailure(t, "overload")
	if admitted.Load() < 50 || shed.Load() < 50 {
		t.Errorf("%d admitted, %d shed: want both", admitted.Load(), shed.Load())
	}
	if peak > base.rss+8<<10 {
		t.Errorf("gateway RSS %s → peak %s under overload: want flat (≤ +8 MiB)", mib(base.rss), mib(peak))
	}
	g.checkAlive(t)
}
