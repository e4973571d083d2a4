//go:build integration

// The processes a scenario starts (the gateway, nginx) and what /proc says about them.

package chaos

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

const python = "/usr/bin/python3"

// needPython skips the suite without /usr/bin/python3, or fails it in CI.
func needPython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		missing(t, "%s: %v", python, err)
	}
}

// missing skips the test, or fails it when CI or REQUIRE_INTEGRATION is set.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	for _, name := range []string{"CI", "REQUIRE_INTEGRATION"} {
		switch os.Getenv(name) {
		case "1", "true", "yes":
			t.Fatalf(format+" (required: %s is set)", append(args, name)...)
		}
	}
	t.Skipf(format+"; skipping", args...)
}

// proc is a child process of the test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    testkit.LogBuffer // stdout and stderr
	done   chan struct{}
	state  *os.ProcessState
	waited time.Time // when it exited
}

// startProc starts cmd; its cleanup stops it (SIGTERM, SIGKILL after 10 s) and kills by pid
// any descendant left behind, which is an error.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	cmd.WaitDelay = 2 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait()
		p.state, p.waited = cmd.ProcessState, time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		left := testkit.Descendants(p.pid())
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s (pid %d) still running 10s after SIGTERM: SIGKILL", name, p.pid())
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for _, d := range left {
			for d.Alive() && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if d.Alive() {
				t.Errorf("%s exited but its descendant %d (%s) runs on: killing it", name, d.PID, d.Comm)
				_ = syscall.Kill(d.PID, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("%s (pid %d) output (last 8 KiB):\n%s", name, p.pid(), tail(p.out.String(), 8<<10))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
}

// gw is a running wsgi-fcgi serving chaosapp.py from its own directory.
type gw struct {
	*proc
	dir              string // the app's directory (--chdir): chaos_version.py is rewritten here
	network, address string
	workers          int
}

// startGateway copies chaosapp.py into a new directory, writes chaos_version.py with "v1" and
// starts the gateway on a unix socket there, with workers workers and args; it waits until
// the workers are up.
func startGateway(t *testing.T, workers int, args ...string) *gw {
	t.Helper()
	return startGatewayEnv(t, workers, nil, args...)
}

func startGatewayEnv(t *testing.T, workers int, env []string, args ...string) *gw {
	t.Helper()
	dir := shortTempDir(t)
	src, err := os.ReadFile("chaosapp.py")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chaosapp.py"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	g := &gw{dir: dir, network: "unix", address: filepath.Join(dir, "gw.sock"), workers: workers}
	g.setVersion(t, "v1")
	listen := g.address
	for i, a := range args {
		if a == "--listen" && i+1 < len(args) {
			listen = args[i+1]
			g.network, g.address = "tcp", listen
		}
	}
	all := []string{"--app", "chaosapp", "--chdir", dir, "--python", python,
		"--workers", strconv.Itoa(workers), "--status-path", "/fcgi-status"}
	if g.network == "unix" {
		all = append(all, "--listen", listen)
	}
	cmd := exec.Command(gatewayBin, append(all, args...)...)
	cmd.Env = []string{"PYTHONDONTWRITEBYTECODE=1"}
	for _, kv := range os.Environ() { // the test's own settings must not reach the gateway
		if !strings.HasPrefix(kv, "WSGI_FCGI_") && !strings.HasPrefix(kv, "FCGI_WEB_SERVER_ADDRS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	g.proc = startProc(t, "gateway", cmd)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout(g.network, g.address, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if g.exited() || time.Now().After(deadline) {
			t.Fatalf("gateway not accepting on %s (%v): %v\n%s", g.address, g.state, err, g.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.waitWorkers(t, workers, 20*time.Second)
	return g
}

// setVersion writes chaos_version.py: the code the next reload imports.
func (g *gw) setVersion(t *testing.T, v string) {
	t.Helper()
	g.writeVersionFile(t, fmt.Sprintf("VERSION = %q\n", v))
}

func (g *gw) writeVersionFile(t *testing.T, src string) {
	t.Helper()
	// Written aside and renamed: a worker importing at that moment sees old or new, not half.
	tmp := filepath.Join(g.dir, ".chaos_version.tmp")
	if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(g.dir, "chaos_version.py")); err != nil {
		t.Fatal(err)
	}
}

// workerPIDs lists the gateway's live children: its Python workers.
func (g *gw) workerPIDs() []int {
	var pids []int
	for _, p := range testkit.Children(g.pid()) {
		pids = append(pids, p.PID)
	}
	return pids
}

// waitWorkers waits until the gateway has n workers.
func (g *gw) waitWorkers(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(g.workerPIDs()) != n {
		if g.exited() {
			t.Fatalf("gateway exited (%v)\n%s", g.state, g.out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway has %d workers after %v, want %d", len(g.workerPIDs()), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logCount counts the lines of the gateway's log holding s.
func (g *gw) logCount(s string) int {
	return strings.Count(g.out.String(), s)
}

// waitLog waits until the log holds s at least n times.
func (g *gw) waitLog(t *testing.T, s string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for g.logCount(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway's log holds %q %d times after %v, want %d", s, g.logCount(s), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAlive fails the test if the gateway died or panicked.
func (g *gw) checkAlive(t *testing.T) {
	t.Helper()
	if g.exited() {
		t.Errorf("gateway exited during the scenario: %v", g.state)
	}
	if log := g.out.String(); strings.Contains(log, "panic:") || strings.Contains(log, "fatal error:") {
		t.Errorf("the gateway's log has a panic:\n%s", tail(log, 4<<10))
	}
}

// status is the gateway's php-fpm style status page.
type status struct {
	Idle   int `json:"idle processes"`
	Active int `json:"active processes"`
	Total  int `json:"total processes"`
	Queue  int `json:"listen queue"`
	// With ?full: a row per worker.
	Processes []struct {
		PID int `json:"pid"`
	} `json:"processes"`
}

func (g *gw) status() (status, error) { return g.statusQuery("json") }

func (g *gw) statusQuery(query string) (status, error) {
	c, err := dial(g.network, g.address)
	if err != nil {
		return status{}, err
	}
	defer c.close()
	r := c.do(1, get("/fcgi-status", query), 5*time.Second)
	if r.err != nil || r.status != 200 {
		return status{}, fmt.Errorf("status page: %d %v", r.status, r.err)
	}
	var s status
	return s, json.Unmarshal(r.body, &s)
}

// waitIdle waits until every worker is idle and none is queued: no worker stays stuck.
func (g *gw) waitIdle(t *testing.T, timeout time.Duration) status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := g.status()
		if err == nil && s.Active == 0 && s.Queue == 0 && s.Idle == g.workers {
			return s
		}
		if time.Now().After(deadline) {
			t.Errorf("workers not all idle %v after the load: %+v %v", timeout, s, err)
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- /proc (tests/internal/testkit) ----

func rssKiB(pid int) int64 {
	n, _ := testkit.StatusField(pid, "VmRSS")
	return n
}

func threads(pid int) int64 {
	n, _ := testkit.StatusField(pid, "Threads")
	return n
}

func fds(pid int) int64 {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return int64(len(entries))
}

// procList describes pids: state, age and command line.
func procList(pids []int) string {
	var out []string
	for _, pid := range pids {
		st, err := testkit.ReadStat(pid)
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, fmt.Sprintf("%d (%c, %v old, %v): %s", pid, st.State, st.Age().Round(time.Millisecond), err,
			strings.ReplaceAll(string(cmdline), "\x00", " ")))
	}
	return strings.Join(out, "; ")
}

// fdList lists what the fds of pid point to.
func fdList(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+"→"+target)
	}
	return strings.Join(out, " ")
}

// usage is a snapshot of the gateway's resources.
type usage struct{ rss, fds, threads int64 }

func (g *gw) usage() usage {
	return usage{rssKiB(g.pid()), fds(g.pid()), threads(g.pid())}
}

func (u usage) String() string {
	return fmt.Sprintf("RSS %s, %d fds, %d threads", mib(u.rss), u.fds, u.threads)
}

// settle waits up to timeout for the gateway's fd count to come back to at most want, and
// returns its usage then.
func (g *gw) settle(want int64, timeout time.Duration) usage {
	deadline := time.Now().Add(timeout)
	for {
		u := g.usage()
		if u.fds <= want || time.Now().After(deadline) {
			return u
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sampler records the gateway's peak RSS (and its workers') every 50 ms until stopped.
type sampler struct {
	pid     int
	stopc   chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	peak    int64 // KiB
	workers int64 // KiB, the largest worker
}

func sample(pid int) *sampler {
	s := &sampler{pid: pid, stopc: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			s.once()
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) once() {
	rss := rssKiB(s.pid)
	var w int64
	for _, c := range testkit.Children(s.pid) {
		w = max(w, rssKiB(c.PID))
	}
	s.mu.Lock()
	s.peak, s.workers = max(s.peak, rss), max(s.workers, w)
	s.mu.Unlock()
}

// stop ends the sampling and returns the peaks (KiB): the gateway's, the largest worker's.
func (s *sampler) stop() (gateway, worker int64) {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.workers
}

// shortTempDir is a temp dir with a path short enough for a unix socket.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wfch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// freePort is a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
