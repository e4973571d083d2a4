//go:build integration

// Process management end to end, with real Python workers and gofast playing the web server:
// pool modes, recycling, the request timeout and its stack, the queue's 503, SIGHUP reload
// under load, SIGQUIT, and SIGKILL of the gateway.

package tests

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
	"github.com/yookoala/gofast"
)

// pmApp is a plain WSGI app (no framework: workers start fast). Every answer is
// "VERSION PID"; /sleep sleeps QUERY_STRING seconds first.
const pmApp = `import os, time
VERSION = %q
def application(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    body = ("%%s %%d" %% (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`

// writePMApp writes pmapp.py answering with version into dir.
func writePMApp(t *testing.T, dir, version string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "pmapp.py"), []byte(fmt.Sprintf(pmApp, version)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startPMGateway starts the gateway on pmapp.py (version "v1") with args.
func startPMGateway(t *testing.T, workers int, args ...string) (*gateway, string) {
	t.Helper()
	dir := shortTempDir(t)
	writePMApp(t, dir, "v1")
	g := startGateway(t, gatewayConfig{app: "pmapp", workers: workers, args: append([]string{"--chdir", dir}, args...)})
	return g, dir
}

// fcgiResult is one request through gofast.
type fcgiResult struct {
	status  int
	body    string
	header  map[string][]string
	err     error
	elapsed time.Duration
}

// fcgiGet sends GET path?query to the gateway as a web server would.
func (g *gateway) fcgiGet(path, query string) fcgiResult {
	start := time.Now()
	client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory(g.network, g.address))()
	if err != nil {
		return fcgiResult{err: err}
	}
	defer client.Close()
	req := gofast.NewRequest(nil)
	uri := path
	if query != "" {
		uri += "?" + query
	}
	for k, v := range map[string]string{
		"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost",
		"SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1", "QUERY_STRING": query,
		"REQUEST_URI": uri, "SCRIPT_NAME": "", "PATH_INFO": path,
	} {
		req.Params[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return fcgiResult{err: err}
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer
	if err := resp.WriteTo(rec, &stderr); err != nil {
		return fcgiResult{err: err}
	}
	return fcgiResult{status: rec.Code, body: rec.Body.String(), header: rec.Header(), elapsed: time.Since(start)}
}

// mustFcgiGet fails the test unless the answer is a 200.
func (g *gateway) mustFcgiGet(t *testing.T, path, query string) string {
	t.Helper()
	r := g.fcgiGet(path, query)
	if r.err != nil || r.status != 200 {
		t.Fatalf("GET %s?%s: %d %v %q", path, query, r.status, r.err, r.body)
	}
	return r.body
}

// zombiesOf counts the zombie children of pid.
func zombiesOf(pid int) int {
	n := 0
	for _, p := range testkit.AllProcs() {
		if p.PPID == pid && p.State == 'Z' {
			n++
		}
	}
	return n
}

// waitWorkerCount polls until the gateway has n worker processes.
func (g *gateway) waitWorkerCount(t *testing.T, n int, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(g.workerPIDs()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d workers after %v, want %d", what, len(g.workerPIDs()), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sleepers sends n GET /sleep?secs at once and returns their results when all ended.
func (g *gateway) sleepers(n int, secs string) <-chan []fcgiResult {
	out := make(chan []fcgiResult, 1)
	go func() {
		var wg sync.WaitGroup
		res := make([]fcgiResult, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = g.fcgiGet("/sleep", secs)
			}()
		}
		wg.Wait()
		out <- res
	}()
	return out
}

func checkAll200(t *testing.T, what string, res []fcgiResult) {
	t.Helper()
	for _, r := range res {
		if r.err != nil || r.status != 200 {
			t.Errorf("%s: %d %v %q", what, r.status, r.err, r.body)
		}
	}
}

func TestPoolModes(t *testing.T) {
	t.Run("static", func(t *testing.T) {
		g, _ := startPMGateway(t, 3)
		g.waitWorkerCount(t, 3, startTimeout, "static at start")
		checkAll200(t, "static", <-g.sleepers(5, "0.2"))
		if n := len(g.workerPIDs()); n != 3 {
			t.Errorf("static: %d workers after a burst, want 3", n)
		}
	})
	t.Run("dynamic", func(t *testing.T) {
		g, _ := startPMGateway(t, 4, "--pm", "dynamic", "--pm-start", "1", "--pm-min-spare", "1", "--pm-max-spare", "2")
		g.waitWorkerCount(t, 1, startTimeout, "dynamic at start (--pm-start 1)")
		done := g.sleepers(3, "1.5")
		// 3 busy and min spare 1: 4 workers, the maximum.
		g.waitWorkerCount(t, 4, 5*time.Second, "dynamic under load")
		checkAll200(t, "dynamic", <-done)
		// 4 idle, max spare 2: trimmed to 2, one a second.
		g.waitWorkerCount(t, 2, 5*time.Second, "dynamic after the load")
	})
	t.Run("ondemand", func(t *testing.T) {
		g, _ := startPMGateway(t, 3, "--pm", "ondemand", "--pm-idle-timeout", "500ms")
		// The worker started to check the app idles out: nothing runs.
		g.waitWorkerCount(t, 0, 5*time.Second, "ondemand when idle")
		done := g.sleepers(5, "1")
		g.waitWorkerCount(t, 3, 5*time.Second, "ondemand under load (at most --workers 3)")
		checkAll200(t, "ondemand", <-done)
		g.waitWorkerCount(t, 0, 5*time.Second, "ondemand after the idle timeout")
		if z := zombiesOf(g.pid()); z != 0 {
			t.Errorf("%d zombie workers", z)
		}
	})
}

func TestMaxRequestsRecyclesWorkers(t *testing.T) {
	g, _ := startPMGateway(t, 1, "--max-requests", "5")
	served := map[string]int{}
	var order []string
	for range 15 {
		_, pid, _ := strings.Cut(g.mustFcgiGet(t, "/", ""), " ")
		if served[pid] == 0 {
			order = append(order, pid)
		}
		served[pid]++
	}
	if len(order) != 3 {
		t.Fatalf("15 requests with --max-requests 5 were served by %d workers %v, want 3", len(order), served)
	}
	for _, pid := range order {
		if served[pid] != 5 {
			t.Errorf("worker %s served %d requests, want 5", pid, served[pid])
		}
	}
	time.Sleep(300 * time.Millisecond)
	if z := zombiesOf(g.pid()); z != 0 {
		t.Errorf("%d zombie workers after recycling", z)
	}
}

func TestTimeoutLogsStackAnd504(t *testing.T) {
	g, dir := startPMGateway(t, 2, "--timeout", "1s", "--slowlog-timeout", "300ms")
	before := g.workerPIDs()

	r := g.fcgiGet("/sleep", "10")
	if r.err != nil || r.status != 504 {
		t.Fatalf("GET /sleep?10 with --timeout 1s: %d %v %q, want 504", r.status, r.err, r.body)
	}
	if r.elapsed < time.Second || r.elapsed > 3*time.Second {
		t.Errorf("504 after %v, want about 1s", r.elapsed)
	}
	// The stack of the stuck worker: faulthandler names the app's file, line and function.
	frame := fmt.Sprintf(`File "%s", line 5 in application`, filepath.Join(dir, "pmapp.py"))
	g.waitLog(t, "slow request", 2*time.Second)
	g.waitLog(t, "request timed out", 2*time.Second)
	log := g.stderr.String()
	if strings.Count(log, frame) < 2 {
		t.Errorf("want the app's frame %q in the slow-request and the timeout stacks; log:\n%s", frame, log)
	}
	// The worker was killed and replaced.
	g.waitWorkers(t, 2, nil, 5*time.Second)
	after := g.workerPIDs()
	if sameInts(before, after) {
		t.Errorf("workers %v unchanged after a timeout", after)
	}
	g.mustFcgiGet(t, "/", "")

	// A slow request under the timeout: logged, not killed.
	r = g.fcgiGet("/sleep", "0.5")
	if r.err != nil || r.status != 200 {
		t.Fatalf("GET /sleep?0.5: %d %v %q, want 200", r.status, r.err, r.body)
	}
	if z := zombiesOf(g.pid()); z != 0 {
		t.Errorf("%d zombie workers", z)
	}
}

func sameInts(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestFullQueueIs503(t *testing.T) {
	g, _ := startPMGateway(t, 1, "--queue-size", "1", "--queue-timeout", "1s")
	busy := g.sleepers(1, "2.5")
	time.Sleep(300 * time.Millisecond) // the sleeper holds the only worker
	queued := g.sleepers(1, "0")
	time.Sleep(200 * time.Millisecond) // ... and this one fills the queue
	full := g.fcgiGet("/", "")
	if full.status != 503 || full.elapsed > 500*time.Millisecond {
		t.Errorf("request over a full queue: %d after %v, want 503 at once", full.status, full.elapsed)
	}
	q := (<-queued)[0]
	if q.status != 503 || q.elapsed < 900*time.Millisecond || q.elapsed > 2*time.Second {
		t.Errorf("queued request: %d after %v, want 503 after about the 1s queue timeout", q.status, q.elapsed)
	}
	if ra := q.header["Retry-After"]; len(ra) != 1 {
		t.Errorf("503 without Retry-After: %v", q.header)
	}
	checkAll200(t, "the request holding the worker", <-busy)
}

func TestReloadUnderLoad(t *testing.T) {
	g, dir := startPMGateway(t, 2)
	old := g.workerPIDs()

	var total, failed atomic.Int64
	var firstErr atomic.Value
	var v2Seen atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := g.fcgiGet("/", "")
				total.Add(1)
				if r.err != nil || r.status != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %v %q", r.status, r.err, r.body))
				} else if strings.HasPrefix(r.body, "v2 ") {
					v2Seen.Store(true)
				}
			}
		}()
	}
	waitCount := func(n int64) {
		deadline := time.Now().Add(30 * time.Second)
		for total.Load() < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCount(500)

	// New code, SIGHUP: served from then on, no request lost.
	writePMApp(t, dir, "v2")
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "reloaded", 10*time.Second)
	g.waitWorkers(t, 2, map[int]bool{old[0]: true, old[1]: true}, 10*time.Second)
	mid := total.Load()
	waitCount(mid + 1000)
	if body := g.mustFcgiGet(t, "/", ""); !strings.HasPrefix(body, "v2 ") {
		t.Errorf("after SIGHUP the old code answers: %q", body)
	}

	// Code that does not import: the reload fails, the running workers go on.
	if err := os.WriteFile(filepath.Join(dir, "pmapp.py"), []byte("raise ImportError('half-deployed')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	current := g.workerPIDs()
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "reload failed", 10*time.Second)
	waitCount(total.Load() + 500)
	close(stop)
	wg.Wait()
	if !strings.Contains(g.stderr.String(), "half-deployed") {
		t.Errorf("the failed reload's error is not in the log:\n%s", g.stderr.String())
	}
	if got := g.workerPIDs(); !sameInts(got, current) {
		t.Errorf("workers after a failed reload %v, want the running ones %v", got, current)
	}
	if body := g.mustFcgiGet(t, "/", ""); !strings.HasPrefix(body, "v2 ") {
		t.Errorf("after the failed reload: %q, want v2 still", body)
	}
	t.Logf("%d requests, %d failed", total.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across the reloads; first: %v", failed.Load(), total.Load(), firstErr.Load())
	}
	if total.Load() < 2000 || !v2Seen.Load() {
		t.Errorf("%d requests, v2 seen %v: want a few thousand and the new code", total.Load(), v2Seen.Load())
	}
}

func TestSIGQUITExitsAtOnce(t *testing.T) {
	g, _ := startPMGateway(t, 2)
	workers := testkit.Descendants(g.pid())
	sleeper := g.sleepers(1, "10")
	time.Sleep(300 * time.Millisecond)
	g.sigterm.Store(true) // told to exit: not a crash for startGateway's cleanup
	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(3 * time.Second):
		t.Fatal("gateway still running 3s after SIGQUIT")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("SIGQUIT exit took %v", took)
	}
	if r := (<-sleeper)[0]; r.status == 200 {
		t.Errorf("the request in flight at SIGQUIT completed; want it cut")
	}
	checkGone(t, workers)
}

func TestGatewaySIGKILLLeavesNoWorker(t *testing.T) {
	needPythonFlask(t)
	dir := shortTempDir(t)
	writePMApp(t, dir, "v1")
	// Started without startGateway, whose cleanup wants an exit 0.
	args, listen := gatewayArgs(t, gatewayConfig{app: "pmapp", workers: 3, args: []string{"--chdir", dir}})
	cmd := exec.Command(gatewayBin, args...)
	cmd.Env = gatewayEnv(nil)
	g := &gateway{process: startProcess(t, "gateway", cmd), workers: 3}
	g.network, g.address, g.upstream = parseListen(listen)
	if err := waitDial(g.process, g.network, g.address, startTimeout); err != nil {
		t.Fatal(err)
	}
	g.waitWorkers(t, 3, nil, startTimeout)
	workers := testkit.Descendants(g.pid())
	sleeper := g.sleepers(1, "10") // one worker busy in the app
	time.Sleep(300 * time.Millisecond)
	g.cmd.Process.Kill()
	<-g.done
	<-sleeper
	checkGone(t, workers)
}

// checkGone fails the test for every process of procs still alive after 3s (then kills it).
func checkGone(t *testing.T, procs []testkit.Stat) {
	t.Helper()
	if len(procs) == 0 {
		t.Fatal("no worker processes to check")
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, p := range procs {
		for p.Alive() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if p.Alive() {
			t.Errorf("worker %d (%s) outlived the gateway", p.PID, p.Comm)
			syscall.Kill(p.PID, syscall.SIGKILL)
		}
	}
}

func TestThreads(t *testing.T) {
	for _, preload := range []bool{false, true} {
		t.Run(fmt.Sprintf("preload=%v", preload), func(t *testing.T) {
			args := []string{"--threads", "3"}
			if preload {
				args = append(args, "--preload")
			}
			g, _ := startPMGateway(t, 2, args...)
			start := time.Now()
			res := <-g.sleepers(6, "0.8")
			took := time.Since(start)
			checkAll200(t, "threads", res)
			pids := map[string]int{}
			for _, r := range res {
				_, pid, _ := strings.Cut(r.body, " ")
				pids[pid]++
			}
			// 6 requests of 0.8s on 2 processes × 3 threads: all at once, 3 in each.
			if took > 1500*time.Millisecond || len(pids) != 2 {
				t.Errorf("6 sleepers took %v on processes %v; want about 0.8s on 2 processes", took, pids)
			}
		})
	}
}

// TestSIGTERMDrains: requests running and queued at SIGTERM all complete, new connections are
// refused, the gateway exits 0 and no worker is left.
func TestSIGTERMDrains(t *testing.T) {
	g, _ := startPMGateway(t, 2)
	workers := testkit.Descendants(g.pid())
	inflight := g.sleepers(3, "1") // two running, one queued
	time.Sleep(300 * time.Millisecond)
	g.terminate()
	time.Sleep(200 * time.Millisecond)
	if r := g.fcgiGet("/", ""); r.err == nil {
		t.Errorf("a new request after SIGTERM was answered (%d); want the listener closed", r.status)
	}
	checkAll200(t, "requests in flight at SIGTERM", <-inflight)
	select {
	case <-g.done:
	case <-time.After(stopTimeout):
		t.Fatal("gateway still running after SIGTERM")
	}
	if !g.state.Success() {
		t.Errorf("exit after SIGTERM: %v, want 0", g.state)
	}
	checkGone(t, workers)
}
