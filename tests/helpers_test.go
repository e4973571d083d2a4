//go:build integration

// Test helpers: required tools, the processes the tests start (the gateway, nginx), and HTTP.

package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// systemPython is the interpreter the tests give the gateway: Debian's, with python3-flask.
const systemPython = "/usr/bin/python3"

// Time limits. Generous: they bound a hang, they do not measure speed.
const (
	startTimeout = 20 * time.Second // until the gateway or nginx accepts connections
	stopTimeout  = 15 * time.Second // from SIGTERM to exit, before SIGKILL
	reqTimeout   = 30 * time.Second // one ordinary HTTP request
)

// ---- required tools ----

// integrationRequired reports whether a missing tool fails the test rather than skipping it.
func integrationRequired() bool {
	for _, name := range []string{"CI", "REQUIRE_INTEGRATION"} {
		switch os.Getenv(name) {
		case "1", "true", "yes":
			return true
		}
	}
	return false
}

// missingTool skips the test, or fails it when integration tests are required.
func missingTool(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if integrationRequired() {
		t.Fatalf("%s (required: CI or REQUIRE_INTEGRATION is set; tests/run.sh installs it)", msg)
	}
	t.Skipf("%s; skipping (tests/run.sh installs it)", msg)
}

var flaskCheck = sync.OnceValues(func() ([]byte, error) {
	return exec.Command(systemPython, "-c", "import flask").CombinedOutput()
})

// needPythonFlask skips (or fails) the test unless /usr/bin/python3 can import flask.
func needPythonFlask(t *testing.T) {
	t.Helper()
	if out, err := flaskCheck(); err != nil {
		missingTool(t, "%s cannot import flask (Debian package python3-flask): %v: %s", systemPython, err, bytes.TrimSpace(out))
	}
}

// needNginx returns the nginx binary, or skips (or fails) the test.
func needNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	missingTool(t, "nginx not found (Debian package nginx)")
	return ""
}

// needCurl returns the curl binary, or skips (or fails) the test.
func needCurl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		missingTool(t, "curl not found (Debian package curl)")
	}
	return p
}

// ---- processes ----

// process is one child process a test started; its cleanup stops it and checks for orphans.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout testkit.LogBuffer
	stderr testkit.LogBuffer
	done   chan struct{} // closed once the process has exited and been waited for
	state  *os.ProcessState

	sigterm atomic.Bool // the test sent SIGTERM: an exit is not a crash
}

// startProcess starts cmd and registers a cleanup that stops it (SIGTERM, then SIGKILL after
// stopTimeout), kills by pid any descendant that outlives it (an error: nothing may be left
// behind) and logs its output if the test failed.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout = &p.stdout
	cmd.Stderr = &p.stderr
	cmd.WaitDelay = 2 * time.Second // a descendant holding the pipes must not block Wait
	// If the test binary dies without its cleanups, the process is told to stop too. Other
	// attributes the caller set (the user to run as) are kept.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		descendants := testkit.Descendants(p.pid())
		p.stop(t)
		reapOrphans(t, name, descendants)
		if t.Failed() {
			t.Logf("%s (pid %d) stderr:\n%s", name, p.pid(), p.stderr.String())
			if out := p.stdout.String(); out != "" {
				t.Logf("%s (pid %d) stdout:\n%s", name, p.pid(), out)
			}
		}
	})
	return p
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// terminate sends SIGTERM.
func (p *process) terminate() {
	p.sigterm.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
}

// stop sends SIGTERM, waits up to stopTimeout, then SIGKILLs; it returns the exit state.
// Stopping an exited process only returns its state.
func (p *process) stop(t *testing.T) *os.ProcessState {
	t.Helper()
	if p.exited() {
		return p.state
	}
	p.terminate()
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Errorf("%s (pid %d) still running %v after SIGTERM: sending SIGKILL", p.name, p.pid(), stopTimeout)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.state
}

// reapOrphans waits for processes that were descendants of a stopped process to go; any
// still alive after a few seconds is an error, and is killed by pid.
func reapOrphans(t *testing.T, parent string, procs []testkit.Stat) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range procs {
		for p.Alive() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if p.Alive() {
			t.Errorf("%s exited but its descendant pid %d (%s) is still running: killing it", parent, p.PID, p.Comm)
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	}
}

// waitDial polls until network/addr accepts a connection, the process exits, or the timeout.
func waitDial(p *process, network, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before accepting connections on %s", p.name, p.state, addr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections on %s after %v: %w", p.name, addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shortTempDir is a temp dir with a short path (a unix socket path must fit in 108 bytes,
// which t.TempDir's test-named paths may not), removed when the test ends.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wfit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T, network, host string) int {
	t.Helper()
	l, err := net.Listen(network, net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("find a free port on %s: %v", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ---- the gateway ----

// gatewayConfig says how to start wsgi-fcgi; zero values give the defaults noted.
type gatewayConfig struct {
	app     string   // --app; default "flaskapp:app" (tests/apps)
	workers int      // --workers; default 2
	listen  string   // --listen; default a unix socket in a temp dir
	args    []string // more flags
	env     []string // more environment (WSGI_FCGI_* of the test's own environment are dropped)
}

// gateway is a running wsgi-fcgi.
type gateway struct {
	*process
	network, address string // where it listens, for net.Dial
	upstream         string // the same address as an nginx upstream "server" value
	workers          int
}

// gatewayArgs returns the command line for cfg (defaults filled) and the listen address.
func gatewayArgs(t *testing.T, cfg gatewayConfig) (args []string, listen string) {
	t.Helper()
	if cfg.app == "" {
		cfg.app = "flaskapp:app"
	}
	if cfg.workers == 0 {
		cfg.workers = 2
	}
	if cfg.listen == "" {
		cfg.listen = "unix:" + filepath.Join(shortTempDir(t), "gw.sock")
	}
	args = []string{
		"--app", cfg.app,
		"--chdir", filepath.Join(repoRoot(), "tests", "apps"),
		"--python", systemPython,
		"--workers", strconv.Itoa(cfg.workers),
		"--listen", cfg.listen,
	}
	return append(args, cfg.args...), cfg.listen
}

// gatewayEnv is the test's environment without WSGI_FCGI_* settings, plus extra.
func gatewayEnv(extra []string) []string {
	env := []string{"PYTHONDONTWRITEBYTECODE=1"} // no __pycache__ in tests/apps
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WSGI_FCGI_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// parseListen splits a --listen address into what net.Dial and nginx's upstream want.
func parseListen(listen string) (network, address, upstream string) {
	switch {
	case strings.HasPrefix(listen, "unix:"):
		p := strings.TrimPrefix(listen, "unix:")
		return "unix", p, "unix:" + p
	case strings.Contains(listen, "/"):
		return "unix", listen, "unix:" + listen
	default:
		return "tcp", listen, listen
	}
}

// startGateway starts wsgi-fcgi and waits until it accepts connections. Its cleanup stops it
// with SIGTERM and fails the test if it had exited by itself, did not exit 0 on SIGTERM, or
// left a worker behind.
func startGateway(t *testing.T, cfg gatewayConfig) *gateway {
	t.Helper()
	needPythonFlask(t)
	args, listen := gatewayArgs(t, cfg)
	cmd := exec.Command(gatewayBin, args...)
	cmd.Env = gatewayEnv(cfg.env)
	g := &gateway{workers: cfg.workers}
	if g.workers == 0 {
		g.workers = 2
	}
	g.network, g.address, g.upstream = parseListen(listen)
	// Registered before startProcess, so it runs after the process's own cleanup.
	t.Cleanup(func() {
		if g.process == nil || !g.exited() {
			return
		}
		switch {
		case !g.sigterm.Load():
			t.Errorf("gateway (pid %d) exited during the test (%v) without being told to", g.pid(), g.state)
		case !g.state.Success():
			t.Errorf("gateway (pid %d) did not exit 0 on SIGTERM: %v", g.pid(), g.state)
		}
	})
	g.process = startProcess(t, "gateway", cmd)
	if err := waitDial(g.process, g.network, g.address, startTimeout); err != nil {
		t.Fatalf("start gateway %v: %v\nstderr:\n%s", args, err, g.stderr.String())
	}
	return g
}

// workerPIDs returns the gateway's live child processes: its Python workers.
func (g *gateway) workerPIDs() []int {
	var pids []int
	for _, p := range testkit.Children(g.pid()) {
		pids = append(pids, p.PID)
	}
	return pids
}

// waitWorkers polls until the gateway has exactly n workers, none of them in exclude.
func (g *gateway) waitWorkers(t *testing.T, n int, exclude map[int]bool, timeout time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pids := g.workerPIDs()
		ok := len(pids) == n
		for _, pid := range pids {
			if exclude[pid] {
				ok = false
			}
		}
		if ok {
			return pids
		}
		if g.exited() {
			t.Fatalf("gateway exited (%v) while waiting for %d workers", g.state, n)
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway has workers %v after %v; want %d, none of %v", pids, timeout, n, keys(exclude))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog polls until the gateway's stderr contains s.
func (g *gateway) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(g.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Errorf("gateway log has no %q after %v", s, timeout)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func keys(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}

// ---- nginx ----

// deploySnippet is the nginx config users are told to install; the tests run it as is, with
// only the upstream address and the listen line replaced.
const deploySnippet = "deploy/nginx/wsgi-fcgi.conf"

// nginx is a running nginx in front of a gateway.
type nginx struct {
	*process
	dir    string
	port   int
	base   string // http://127.0.0.1:PORT
	client *http.Client
}

// siteConfig returns the deploy snippet for this test: upstream and port replaced. It fails
// the test when a line it replaces is gone, so snippet and test change together.
func siteConfig(t *testing.T, upstream string, port int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), deploySnippet))
	if err != nil {
		t.Fatalf("read the nginx snippet: %v", err)
	}
	conf := string(b)
	for _, r := range []struct{ old, new string }{
		{"server unix:/run/wsgi-fcgi/wsgi-fcgi.sock;", "server " + upstream + ";"},
		{"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port)},
	} {
		if strings.Count(conf, r.old) != 1 {
			t.Fatalf("%s must contain %q exactly once (tests/helpers_test.go replaces it)", deploySnippet, r.old)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	return conf
}

// mainConfig is the nginx.conf around the snippet: foreground, every path inside dir.
func mainConfig(dir string) string {
	user := ""
	if os.Geteuid() == 0 {
		// As root, nginx's workers would run as nobody and could open neither the temp dirs
		// (0700) nor the gateway's socket.
		user = "user root;"
	}
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
%[2]s
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    default_type application/octet-stream;
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body;
    fastcgi_temp_path %[1]s/fastcgi;
    proxy_temp_path %[1]s/proxy;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/wsgi-fcgi.conf;
}
`, dir, user)
}

// startNginx starts nginx with the deploy snippet, passing to upstream (an upstream "server"
// value: "unix:/path" or "host:port"), and waits until it accepts connections.
func startNginx(t *testing.T, upstream string) *nginx {
	t.Helper()
	bin := needNginx(t)
	params, err := os.ReadFile("/etc/nginx/fastcgi_params")
	if err != nil {
		missingTool(t, "read nginx's fastcgi_params: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port can be taken before nginx binds it
		dir := shortTempDir(t)
		port := freePort(t, "tcp4", "127.0.0.1")
		files := map[string]string{
			"nginx.conf":     mainConfig(dir),
			"wsgi-fcgi.conf": siteConfig(t, upstream, port),
			"fastcgi_params": string(params), // the snippet's relative include finds it here
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
		n := &nginx{dir: dir, port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
		n.process = startProcess(t, "nginx", cmd)
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				t.Logf("nginx error.log:\n%s", b)
			}
		})
		lastErr = waitDial(n.process, "tcp", fmt.Sprintf("127.0.0.1:%d", port), startTimeout)
		if lastErr == nil {
			tr := &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 16}
			n.client = &http.Client{
				Transport: tr,
				// Redirects are for the tests to look at, not to follow.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			t.Cleanup(tr.CloseIdleConnections)
			return n
		}
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		if !bytes.Contains(b, []byte("Address already in use")) {
			break
		}
	}
	t.Fatalf("start nginx: %v", lastErr)
	return nil
}

// response is a whole HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request builds a request to nginx that times out after timeout (reqTimeout if zero).
func (n *nginx) request(t *testing.T, method, path string, body io.Reader, timeout time.Duration) *http.Request {
	t.Helper()
	if timeout == 0 {
		timeout = reqTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, n.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// fetch sends req and reads the whole response; safe to call from any goroutine.
func (n *nginx) fetch(req *http.Request) (response, error) {
	resp, err := n.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{resp.StatusCode, resp.Header, b}, fmt.Errorf("read body: %w", err)
	}
	return response{resp.StatusCode, resp.Header, b}, nil
}

// send is fetch that fails the test on an error.
func (n *nginx) send(t *testing.T, req *http.Request) response {
	t.Helper()
	r, err := n.fetch(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.RequestURI(), err)
	}
	return r
}

func (n *nginx) get(t *testing.T, path string) response {
	t.Helper()
	return n.send(t, n.request(t, http.MethodGet, path, nil, 0))
}

// mustGet GETs path and fails the test unless the status is want.
func (n *nginx) mustGet(t *testing.T, path string, want int) response {
	t.Helper()
	r := n.get(t, path)
	if r.status != want {
		t.Fatalf("GET %s: status %d, want %d; body:\n%s", path, r.status, want, r.body)
	}
	return r
}
