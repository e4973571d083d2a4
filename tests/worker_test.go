//go:build integration

// Worker processes under stress: killed mid-request, and the gateway stopped mid-request.

package tests

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// startSleeper starts GET /sleep?s=secs in the background and returns the pid of the worker
// serving it (read from the file the app writes before sleeping) and where its response comes.
func startSleeper(t *testing.T, g *gateway, n *nginx, secs float64) (int, <-chan fetchResult) {
	t.Helper()
	pidfile := filepath.Join(shortTempDir(t), "sleeper.pid")
	req := n.request(t, http.MethodGet, "/sleep?s="+strconv.FormatFloat(secs, 'f', -1, 64)+"&pidfile="+pidfile, nil, 0)
	done := make(chan fetchResult, 1)
	go func() {
		r, err := n.fetch(req)
		done <- fetchResult{r, err, time.Now()}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(pidfile)
		if err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file of /sleep holds %q", b)
			}
			return pid, done
		}
		select {
		case r := <-done:
			t.Fatalf("GET /sleep ended (status %d, %v) before the app wrote its pid; body:\n%s", r.status, r.err, r.body)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /sleep: no worker wrote %s within 10s; workers: %v", pidfile, g.workerPIDs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fetchResult is a response read in another goroutine.
type fetchResult struct {
	response
	err error
	at  time.Time // when it ended
}

func TestWorkerKilledMidRequest(t *testing.T) {
	const workers = 3
	g := startGateway(t, gatewayConfig{workers: workers})
	n := startNginx(t, g.upstream)
	g.waitWorkers(t, workers, nil, startTimeout)

	victim, sleeper := startSleeper(t, g, n, 5)
	isWorker := false
	for _, pid := range g.workerPIDs() {
		isWorker = isWorker || pid == victim
	}
	if !isWorker {
		t.Fatalf("/sleep ran in pid %d, which is not a worker of the gateway (workers %v)", victim, g.workerPIDs())
	}

	// Requests running on the other workers while one dies.
	const others = 8
	results := make(chan fetchResult, others)
	for range others {
		req := n.request(t, http.MethodGet, "/pid", nil, 0)
		go func() {
			r, err := n.fetch(req)
			results <- fetchResult{r, err, time.Now()}
		}()
	}

	killedAt := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill worker %d: %v", victim, err)
	}

	r := <-sleeper
	if r.err != nil {
		t.Errorf("GET /sleep on the killed worker: %v; want a 502 response", r.err)
	} else if r.status != http.StatusBadGateway {
		t.Errorf("GET /sleep on the killed worker: status %d, want 502; body:\n%s", r.status, r.body)
	}
	if took := r.at.Sub(killedAt); took > 2*time.Second {
		t.Errorf("GET /sleep ended %v after its worker was killed, want < 2s", took)
	}
	for range others {
		r := <-results
		if r.err != nil || r.status != http.StatusOK {
			t.Errorf("concurrent GET /pid: status %d, %v; body:\n%s", r.status, r.err, r.body)
		} else if string(r.body) == strconv.Itoa(victim) {
			t.Errorf("concurrent GET /pid was answered by the worker busy sleeping (%d)", victim)
		}
	}

	// The pool replaces the worker, and every worker serves again.
	g.waitWorkers(t, workers, map[int]bool{victim: true}, 10*time.Second)
	for range 4 * workers {
		r := n.mustGet(t, "/pid", http.StatusOK)
		if string(r.body) == strconv.Itoa(victim) {
			t.Errorf("GET /pid answered by the killed worker %d", victim)
		}
	}
}

// TestGracefulStop sends SIGTERM while a request runs: the request completes, the gateway
// exits 0, and no worker is left.
func TestGracefulStop(t *testing.T) {
	g := startGateway(t, gatewayConfig{workers: 2})
	n := startNginx(t, g.upstream)
	g.waitWorkers(t, 2, nil, startTimeout)
	workers := testkit.Children(g.pid())

	_, sleeper := startSleeper(t, g, n, 1.5)
	g.terminate()
	r := <-sleeper
	if r.err != nil || r.status != http.StatusOK || string(r.body) != "slept\n" {
		t.Errorf("GET /sleep in flight at SIGTERM: status %d, %v, body %q; want 200 slept", r.status, r.err, r.body)
	}
	select {
	case <-g.done:
	case <-time.After(stopTimeout):
		t.Fatalf("gateway still running %v after SIGTERM", stopTimeout)
	}
	if code := g.state.ExitCode(); code != 0 {
		t.Errorf("gateway exit status %v after SIGTERM, want 0", g.state)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, w := range workers {
		for w.Alive() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if w.Alive() {
			t.Errorf("worker %d still running after the gateway exited", w.PID)
		}
	}
}
