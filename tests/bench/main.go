// Command bench compares wsgi-fcgi with uWSGI (--fastcgi-socket) and gunicorn (sync workers),
// each behind the same nginx, running the same apps with the same number of Python worker
// processes, in one run, and prints requests/s, latency and memory with ratios to uWSGI.
//
//	go run ./tests/bench                              # all apps, all peers, 5 s each
//	go run ./tests/bench -apps flask -duration 10s -reps 3 -out results.jsonl
//	go run ./tests/bench -gateway-args=--priority=-10        # wsgi-fcgi with more flags
//
// Load comes from wrk over HTTP/1.1 keep-alive to nginx; nginx speaks FastCGI over a unix
// socket to wsgi-fcgi (kept connections) and uWSGI (a connection per request: uWSGI closes
// after every response), and HTTP over a unix socket to gunicorn. It needs Debian's nginx, wrk,
// uwsgi, uwsgi-plugin-python3, gunicorn, python3-flask and python3-django; Python apps run with
// /usr/bin/python3. Every process it starts is stopped by pid when a run ends.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// workload is one app and the request the load generator sends.
type workload struct {
	name, module, path string
	method             string
	bodySize           int
}

var workloads = []workload{
	{name: "hello", module: "hello", path: "/", method: "GET"},
	{name: "flask", module: "flaskapp", path: "/json/bob?q=1", method: "GET"},
	{name: "post", module: "flaskapp", path: "/sha", method: "POST", bodySize: 16 << 10},
	{name: "django", module: "djangoapp", path: "/hello/bob?q=1", method: "GET"},
}

// settings of one bench run.
type settings struct {
	apps, peers []string
	workers     int
	conns       int
	duration    time.Duration
	reps        int
	python      string
	gateway     string   // wsgi-fcgi binary
	gatewayArgs []string // more flags for it (-gateway-args)
	out         string
	dir         string // scratch: sockets, configs, logs
	appDir      string
}

// result is one measurement.
type result struct {
	Workload string  `json:"workload"`
	Peer     string  `json:"peer"`
	Rep      int     `json:"rep"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Errors   int     `json:"errors"`
	RSSMiB   float64 `json:"rss_mib"`
	PSSMiB   float64 `json:"pss_mib"`
	CPUPct   float64 `json:"peer_cpu_pct"`
}

func main() {
	var s settings
	var apps, peers, gatewayArgs string
	flag.StringVar(&apps, "apps", "hello,flask,post,django", "workloads to run: hello, flask, post, django")
	flag.StringVar(&peers, "peers", "wsgi-fcgi,uwsgi,gunicorn", "servers to compare")
	flag.IntVar(&s.workers, "workers", 2, "Python worker processes of every peer")
	flag.IntVar(&s.conns, "c", 16, "wrk connections")
	flag.DurationVar(&s.duration, "duration", 5*time.Second, "length of each measurement")
	flag.IntVar(&s.reps, "reps", 1, "repetitions of the whole matrix (the table shows medians)")
	flag.StringVar(&s.python, "python", "/usr/bin/python3", "Python with Flask and Django")
	flag.StringVar(&s.out, "out", "", "also write one JSON line per measurement to this file")
	flag.StringVar(&gatewayArgs, "gateway-args", "", "more flags for wsgi-fcgi, separated by spaces (e.g. \"--priority=-10 --send-ahead=4\")")
	flag.Parse()
	s.apps, s.peers = strings.Split(apps, ","), strings.Split(peers, ",")
	s.gatewayArgs = strings.Fields(gatewayArgs)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &s); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, s *settings) error {
	for _, tool := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install nginx wrk uwsgi uwsgi-plugin-python3 gunicorn python3-flask python3-django)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "wsgi-fcgi-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s.dir = dir
	_, self, _, _ := runtime.Caller(0)
	s.appDir = filepath.Join(filepath.Dir(self), "apps")
	s.gateway = filepath.Join(dir, "wsgi-fcgi")
	build := exec.Command("go", "build", "-o", s.gateway, "./cmd/wsgi-fcgi")
	build.Dir = filepath.Join(filepath.Dir(self), "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build wsgi-fcgi: %v\n%s", err, out)
	}
	body := filepath.Join(dir, "body")
	if err := os.WriteFile(body, bytes.Repeat([]byte("0123456789abcdef"), 1024), 0o644); err != nil {
		return err
	}

	var results []result
	var sink io.Writer = io.Discard
	if s.out != "" {
		f, err := os.Create(s.out)
		if err != nil {
			return err
		}
		defer f.Close()
		sink = f
	}
	fmt.Fprintf(os.Stderr, "%d workers per peer, %d connections, %v per run, %d repetition(s), %d CPUs\n",
		s.workers, s.conns, s.duration, s.reps, runtime.NumCPU())
	for rep := 1; rep <= s.reps; rep++ {
		for _, w := range workloads {
			if !contains(s.apps, w.name) {
				continue
			}
			for _, peer := range s.peers {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r, err := measure(ctx, s, peer, w, body)
				if err != nil {
					return fmt.Errorf("%s %s: %w", peer, w.name, err)
				}
				r.Rep = rep
				fmt.Fprintf(os.Stderr, "  %-6s %-9s rps=%-9.0f p50=%.2fms p99=%.2fms errors=%d rss=%.1fMiB pss=%.1fMiB cpu=%.0f%%\n",
					w.name, peer, r.RPS, r.P50ms, r.P99ms, r.Errors, r.RSSMiB, r.PSSMiB, r.CPUPct)
				results = append(results, r)
				line, _ := json.Marshal(r)
				fmt.Fprintf(sink, "%s\n", line)
			}
		}
	}
	printTable(os.Stdout, s, results)
	return nil
}

// measure starts peer for w, puts nginx in front, warms up, runs wrk and samples memory.
func measure(ctx context.Context, s *settings, peer string, w workload, body string) (result, error) {
	res := result{Workload: w.name, Peer: peer}
	sock := filepath.Join(s.dir, peer+".sock")
	os.Remove(sock)
	proc, upstream, err := startPeer(s, peer, w, sock)
	if err != nil {
		return res, err
	}
	defer proc.stop()
	if err := waitUnix(sock, 60*time.Second, proc); err != nil {
		return res, fmt.Errorf("%v\n%s", err, proc.log())
	}
	port, err := freePort()
	if err != nil {
		return res, err
	}
	ngx, err := startNginx(s.dir, peer, upstream, port)
	if err != nil {
		return res, err
	}
	defer ngx.stop()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, w.path)

	script := ""
	if w.method == "POST" {
		script = filepath.Join(s.dir, "post.lua")
		lua := fmt.Sprintf("wrk.method = \"POST\"\nlocal f = io.open(%q, \"rb\")\nwrk.body = f:read(\"*a\")\nf:close()\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n", body)
		if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
			return res, err
		}
	}
	// Warm-up: every worker imports and renders once.
	if _, err := runWrk(ctx, url, script, 8, time.Second); err != nil {
		return res, fmt.Errorf("warm-up: %w\n%s", err, proc.log())
	}
	cpu0 := treeCPU(proc.pid())
	sampler := startSampler(proc.pid())
	start := time.Now()
	out, err := runWrk(ctx, url, script, s.conns, s.duration)
	elapsed := time.Since(start)
	res.RSSMiB, res.PSSMiB = sampler.stop()
	// Clock ticks are 1/100 s (USER_HZ), so ticks per second is % of one core.
	res.CPUPct = float64(treeCPU(proc.pid())-cpu0) / elapsed.Seconds()
	if err != nil {
		return res, err
	}
	return res, parseWrk(out, &res)
}

// startPeer starts one server on sock and returns it with nginx's upstream directive.
func startPeer(s *settings, peer string, w workload, sock string) (*proc, string, error) {
	app := w.module + ":application"
	workers := strconv.Itoa(s.workers)
	var cmd *exec.Cmd
	var upstream string
	switch peer {
	case "wsgi-fcgi":
		// --preload: the app imported once and the workers forked, as uWSGI does by default
		// (without --lazy-apps); gunicorn's default imports in each worker.
		args := []string{"--app", app, "--chdir", s.appDir, "--python", s.python,
			"--workers", workers, "--listen", sock, "--log-level", "warn", "--preload"}
		cmd = exec.Command(s.gateway, append(args, s.gatewayArgs...)...)
		upstream = fmt.Sprintf(`upstream peer { server unix:%s; keepalive 32; }
	location / { include fastcgi_params; fastcgi_pass peer; fastcgi_keep_conn on; }`, sock)
	case "uwsgi":
		cmd = exec.Command("uwsgi", "--plugin", "python3", "--master", "--processes", workers,
			"--fastcgi-socket", sock, "--chdir", s.appDir, "--module", app, "--disable-logging",
			"--die-on-term", "--need-app", "--chmod-socket=666")
		upstream = fmt.Sprintf(`upstream peer { server unix:%s; }
	location / { include fastcgi_params; fastcgi_pass peer; }`, sock)
	case "gunicorn":
		cmd = exec.Command(s.python, "-m", "gunicorn", "--workers", workers, "--worker-class", "sync",
			"--bind", "unix:"+sock, "--chdir", s.appDir, "--log-level", "warning", app)
		upstream = fmt.Sprintf(`upstream peer { server unix:%s; }
	location / { proxy_pass http://peer; proxy_set_header Host $host; }`, sock)
	default:
		return nil, "", fmt.Errorf("unknown peer %q", peer)
	}
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	p, err := start(cmd, filepath.Join(s.dir, peer+".log"))
	return p, upstream, err
}

// startNginx runs nginx with a config passing everything to upstream.
func startNginx(dir, peer, upstream string, port int) (*proc, error) {
	ndir := filepath.Join(dir, "nginx-"+peer)
	os.RemoveAll(ndir)
	if err := os.MkdirAll(ndir, 0o755); err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	// The upstream block goes at http level; its location into the server.
	up, loc, _ := strings.Cut(upstream, "\n")
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes auto;
%[1]s
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    fastcgi_temp_path %[2]s/fastcgi;
    proxy_temp_path %[2]s/proxy;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    proxy_http_version 1.0;
    %[3]s
    server {
        listen 127.0.0.1:%[4]d;
        %[5]s
    }
}
`, user, ndir, up, port, loc)
	if err := os.WriteFile(filepath.Join(ndir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := writeParams(filepath.Join(ndir, "fastcgi_params")); err != nil {
		return nil, err
	}
	p, err := start(exec.Command("nginx", "-p", ndir, "-e", filepath.Join(ndir, "error.log"), "-c", filepath.Join(ndir, "nginx.conf")),
		filepath.Join(ndir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
		p.stop()
		b, _ := os.ReadFile(filepath.Join(ndir, "error.log"))
		return nil, fmt.Errorf("nginx: %v\n%s", err, b)
	}
	return p, nil
}

func runWrk(ctx context.Context, url, script string, conns int, d time.Duration) (string, error) {
	threads := min(2, conns)
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%.0fs", d.Seconds()), "--latency"}
	if script != "" {
		args = append(args, "-s", script)
	}
	out, err := exec.CommandContext(ctx, "wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("wrk: %v\n%s", err, out)
	}
	return string(out), nil
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reLatency  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\b`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSockErrs = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads requests/s, p50/p99 and errors from wrk's --latency report.
func parseWrk(out string, r *result) error {
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("no Requests/sec in wrk's output:\n%s", out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range reLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.P50ms = v
		} else {
			r.P99ms = v
		}
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		r.Errors, _ = strconv.Atoi(m[1])
	}
	if m := reSockErrs.FindStringSubmatch(out); m != nil {
		for _, v := range m[1:] {
			n, _ := strconv.Atoi(v)
			r.Errors += n
		}
	}
	return nil
}

// printTable writes one table per workload: medians over repetitions, ratios to uWSGI.
func printTable(w io.Writer, s *settings, results []result) {
	fmt.Fprintf(w, "\n%d Python workers per peer, wrk -c %d through nginx, %v per run, median of %d; x uwsgi = ratio of requests/s to uWSGI's\n",
		s.workers, s.conns, s.duration, s.reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tpeer\trequests/s\tx uwsgi\tp50 ms\tp99 ms\terrors\tRSS MiB\tPSS MiB\tpeer CPU %\t")
	for _, wl := range workloads {
		ref := median(results, wl.name, "uwsgi")
		for _, peer := range s.peers {
			rs := filter(results, wl.name, peer)
			if len(rs) == 0 {
				continue
			}
			m := median(results, wl.name, peer)
			ratio := "-"
			if ref.RPS > 0 {
				ratio = fmt.Sprintf("%.2f", m.RPS/ref.RPS)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%.2f\t%.2f\t%d\t%.1f\t%.1f\t%.0f\t\n",
				wl.name, peer, m.RPS, ratio, m.P50ms, m.P99ms, m.Errors, m.RSSMiB, m.PSSMiB, m.CPUPct)
		}
	}
	tw.Flush()
}

func filter(rs []result, wl, peer string) []result {
	var out []result
	for _, r := range rs {
		if r.Workload == wl && r.Peer == peer {
			out = append(out, r)
		}
	}
	return out
}

// median returns, field by field, the median of the repetitions (errors: the sum).
func median(rs []result, wl, peer string) result {
	sel := filter(rs, wl, peer)
	if len(sel) == 0 {
		return result{}
	}
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(sel))
		for i, r := range sel {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	m := result{Workload: wl, Peer: peer}
	m.RPS = pick(func(r result) float64 { return r.RPS })
	m.P50ms = pick(func(r result) float64 { return r.P50ms })
	m.P99ms = pick(func(r result) float64 { return r.P99ms })
	m.RSSMiB = pick(func(r result) float64 { return r.RSSMiB })
	m.PSSMiB = pick(func(r result) float64 { return r.PSSMiB })
	m.CPUPct = pick(func(r result) float64 { return r.CPUPct })
	for _, r := range sel {
		m.Errors += r.Errors
	}
	return m
}

// ---- processes ----

// proc is a process this bench started; stop ends it and its descendants.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func start(cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &proc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// stop sends SIGTERM, waits, then SIGKILLs the process group it started (every process of a
// peer: uWSGI's and gunicorn's workers are in it).
func (p *proc) stop() {
	tree := descendants(p.pid())
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
	syscall.Kill(-p.pid(), syscall.SIGKILL)
	for _, pid := range tree {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	<-p.done
}

func waitUnix(sock string, timeout time.Duration, p *proc) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return errors.New("the server exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("nothing listens on %s after %v", sock, timeout)
}

func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeParams writes Debian's fastcgi_params with the path split every FastCGI peer
// understands: SCRIPT_NAME "" and PATH_INFO the path (uWSGI, unlike wsgi-fcgi, does not derive
// PATH_INFO from the stock params' SCRIPT_NAME).
func writeParams(dst string) error {
	b, err := os.ReadFile("/etc/nginx/fastcgi_params")
	if err != nil {
		return err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "SCRIPT_NAME") {
			line = "fastcgi_param  SCRIPT_NAME        \"\";\nfastcgi_param  PATH_INFO          $uri;"
		}
		out = append(out, line)
	}
	return os.WriteFile(dst, []byte(strings.Join(out, "\n")), 0o644)
}

// ---- /proc ----

// descendants returns pid and every process below it.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 2 {
			ppid, _ := strconv.Atoi(fields[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// treeCPU is the CPU time, in clock ticks, used by pid and its live descendants.
func treeCPU(pid int) int64 {
	var total int64
	for _, p := range descendants(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		for _, i := range []int{11, 12} { // utime, stime
			if i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				total += v
			}
		}
	}
	return total
}

// sampler records the peak RSS and PSS of a process tree, summed, every 500 ms.
type sampler struct {
	stopc    chan struct{}
	done     chan struct{}
	rss, pss int64 // KiB
}

func startSampler(pid int) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			rss, pss := treeMemory(pid)
			s.rss, s.pss = max(s.rss, rss), max(s.pss, pss)
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() (rssMiB, pssMiB float64) {
	close(s.stopc)
	<-s.done
	return float64(s.rss) / 1024, float64(s.pss) / 1024
}

func treeMemory(pid int) (rss, pss int64) {
	for _, p := range descendants(pid) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(fields[1], 10, 64)
			switch fields[0] {
			case "Rss:":
				rss += v
			case "Pss:":
				pss += v
			}
		}
		f.Close()
	}
	return rss, pss
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
