//go:build integration

// Signals and the operator's commands: SIGUSR1 reopens the access log after logrotate renamed
// it, with no line lost; the signals that do nothing say so; --touch-reload reloads the
// workers when a file is touched; --check-config (-t) checks and imports without listening.

package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSIGUSR1ReopensAccessLog does what logrotate does without copytruncate: rename the
// access log while requests come in, send SIGUSR1, and check that every request is a line in
// exactly one of the two files: the renamed one up to the reopen, the new one after.
func TestSIGUSR1ReopensAccessLog(t *testing.T) {
	logFile := filepath.Join(shortTempDir(t), "access.log")
	g := startGateway(t, gatewayConfig{workers: 2, args: []string{"--access-log", logFile, "--access-log-format", "{uri}"}})

	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if r := g.fcgiGet("/query", fmt.Sprintf("c=%d&i=%d", c, i)); r.err != nil || r.status != 200 {
					t.Errorf("request failed: %d %v", r.status, r.err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	for sent.Load() < 20 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "SIGUSR1: log files reopened", 5*time.Second)
	after := sent.Load()
	for sent.Load() < after+20 {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	want := int(sent.Load())

	read := func(name string) []string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	var old, cur []string
	deadline := time.Now().Add(5 * time.Second) // the log is flushed every second
	for {
		old, cur = read(logFile+".1"), read(logFile)
		if len(old)+len(cur) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, line := range append(old, cur...) {
		if !regexp.MustCompile(`^/query\?c=[01]&i=\d+$`).MatchString(line) {
			t.Errorf("broken line %q", line)
		}
		seen[line]++
	}
	for c := range 2 {
		for i := 0; ; i++ {
			line := fmt.Sprintf("/query?c=%d&i=%d", c, i)
			if seen[line] == 0 {
				break
			}
			if seen[line] > 1 {
				t.Errorf("%s logged %d times", line, seen[line])
			}
			delete(seen, line)
		}
	}
	if len(seen) > 0 {
		t.Errorf("lines with a gap before them (a line lost): %v", seen)
	}
	// 20 requests were answered before the rename and 20 after the reopen; a line is written
	// as its request ends, so one or two may fall on the other side.
	if len(old)+len(cur) != want || len(old) < 15 || len(cur) < 15 {
		t.Errorf("%d lines in the renamed file and %d in the new one, want %d in all, at least 15 in each", len(old), len(cur), want)
	}
	for _, first := range []string{"/query?c=0&i=0", "/query?c=1&i=0"} {
		if !strings.Contains(strings.Join(old, "\n")+"\n", first+"\n") {
			t.Errorf("the renamed file lacks the first requests: %q", first)
		}
	}
}

// TestNopSignals: the signals that do nothing here are logged, SIGUSR2 naming SIGHUP, and
// the gateway serves on; SIGUSR1 with no log file says so.
func TestNopSignals(t *testing.T) {
	g := startGateway(t, gatewayConfig{workers: 1})
	for _, tc := range []struct {
		sig  syscall.Signal
		want string
	}{
		{syscall.SIGUSR2, "SIGUSR2 does nothing here; to reload the app gracefully (php-fpm's SIGUSR2), send SIGHUP"},
		{syscall.SIGTTIN, "SIGTTIN does nothing here"},
		{syscall.SIGWINCH, "SIGWINCH does nothing here"},
		{syscall.SIGUSR1, "SIGUSR1: no log file to reopen"},
	} {
		if err := g.cmd.Process.Signal(tc.sig); err != nil {
			t.Fatal(err)
		}
		g.waitLog(t, tc.want, 5*time.Second)
		// A gateway stopped (SIGTTIN's default action) would never answer.
		answer := make(chan fcgiResult, 1)
		go func() { answer <- g.fcgiGet("/query", "x=1") }()
		select {
		case r := <-answer:
			if r.err != nil || r.status != 200 || !strings.Contains(r.body, `"x"`) {
				t.Errorf("after %v: %d %v %q", tc.sig, r.status, r.err, r.body)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer within 10s after %v", tc.sig)
		}
	}
}

// TestSignalsDuringStart sends each signal the gateway catches while the app is still
// importing, before the signal loop runs: SIGHUP's default action would kill the gateway,
// SIGTTIN's stop it; SIGUSR1 and SIGUSR2 must not harm it either.
func TestSignalsDuringStart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTTIN} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			dir := shortTempDir(t)
			writeApp(t, dir, "one")
			marker := writeSlowApp(t, dir)
			args, listen := gatewayArgs(t, gatewayConfig{app: "slowapp", workers: 1, args: []string{"--chdir", dir}})
			cmd := exec.Command(gatewayBin, args...)
			cmd.Env = gatewayEnv(nil)
			p := startProcess(t, "gateway", cmd)
			waitFile(t, p, marker)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			network, address, _ := parseListen(listen)
			if err := waitDial(p, network, address, startTimeout); err != nil {
				t.Fatalf("after %v during start-up: %v\n%s", sig, err, p.stderr.String())
			}
			g := &gateway{process: p, network: network, address: address, workers: 1}
			if got := g.mustFcgiGet(t, "/", ""); got != "one" {
				t.Errorf("answer %q", got)
			}
			if state := p.stop(t); !state.Success() {
				t.Errorf("exit on SIGTERM: %v", state)
			}
			if strings.Contains(p.stderr.String(), "reloading") {
				t.Errorf("a %v during start-up reloaded the app:\n%s", sig, p.stderr.String())
			}
		})
	}
}

// writeSlowApp writes slowapp.py into dir: an app whose import takes 1.5s, and makes the
// file it returns when the import starts.
func writeSlowApp(t *testing.T, dir string) (marker string) {
	t.Helper()
	marker = filepath.Join(dir, "importing")
	slow := "import os, time\nopen(" + strconv.Quote(marker) + ", \"w\").close()\ntime.sleep(1.5)\nfrom reloadapp import application\n"
	if err := os.WriteFile(filepath.Join(dir, "slowapp.py"), []byte(slow), 0o644); err != nil {
		t.Fatal(err)
	}
	return marker
}

// waitFile waits for the file name to exist while p runs.
func waitFile(t *testing.T, p *process, name string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if _, err := os.Stat(name); err == nil {
			return
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("%s never appeared\n%s", name, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTouchReload is the shared-hosting deploy: new code in place, then the file touched;
// the new code is served within seconds, and no request fails meanwhile. The file does not
// exist at start.
func TestTouchReload(t *testing.T) {
	dir := shortTempDir(t)
	writeApp(t, dir, "one")
	touch := filepath.Join(dir, "reload.txt")
	g := startGateway(t, gatewayConfig{app: "reloadapp", workers: 2, args: []string{"--chdir", dir, "--touch-reload", touch}})
	g.waitLog(t, "--touch-reload: the file does not exist yet", time.Second)

	var failed, served atomic.Int64
	var newAt atomic.Int64 // when "two" was first served (UnixNano)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
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
				served.Add(1)
				switch {
				case r.err != nil || r.status != 200:
					failed.Add(1)
					t.Errorf("request failed during the reload: %d %v %q", r.status, r.err, r.body)
				case r.body == "two":
					newAt.CompareAndSwap(0, time.Now().UnixNano())
				case r.body != "one":
					t.Errorf("unexpected answer %q", r.body)
				}
			}
		}()
	}
	// The new code is in place, and not served until the file is touched.
	if err := os.WriteFile(filepath.Join(dir, "version.py"), []byte(`VERSION = "two"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if newAt.Load() != 0 {
		t.Fatal("the new code was served before the file was touched")
	}
	touched := time.Now()
	if err := os.WriteFile(touch, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for newAt.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // and it goes on serving through the old workers' exit
	close(stop)
	wg.Wait()
	if newAt.Load() == 0 {
		t.Fatalf("the new code was not served within 10s of the touch\n%s", g.stderr.String())
	}
	took := time.Unix(0, newAt.Load()).Sub(touched)
	t.Logf("new code served %v after the touch; %d requests, %d failed", took.Round(time.Millisecond), served.Load(), failed.Load())
	if took > 5*time.Second {
		t.Errorf("the new code was served %v after the touch, want within 5s", took)
	}
	g.waitLog(t, "--touch-reload: the file changed; reloading the app", time.Second)
	if got := g.mustFcgiGet(t, "/", ""); got != "two" {
		t.Errorf("after the reload: %q", got)
	}
}

// TestCheckConfig runs wsgi-fcgi -t (and --check-config): one line and exit status 0 for a
// good configuration, 2 for a bad flag or an app that does not import; and it never listens,
// during the import or after.
func TestCheckConfig(t *testing.T) {
	if _, err := os.Stat(systemPython); err != nil {
		missingTool(t, "%s: %v", systemPython, err)
	}
	apps := filepath.Join(repoRoot(), "tests", "apps")
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // a regexp for the whole of it
		wantStderr string // in the one line
	}{
		{"good", []string{"-t", "--app", "validapp:application"}, 0,
			`^wsgi-fcgi: configuration ok: app validapp:application imported with ` + regexp.QuoteMeta(systemPython) + ` \(3\.\d+\.\d+\)\n$`, ""},
		{"good, long flag", []string{"--check-config", "--app", "flaskapp:app"}, 0, `^wsgi-fcgi: configuration ok: app flaskapp:app imported with `, ""},
		{"bad flag", []string{"-t", "--app", "validapp:application", "--wrokers", "2"}, 2, `^$`, "unknown flag --wrokers: did you mean --workers?"},
		{"bad value", []string{"-t", "--app", "validapp:application", "--timeout", "30x"}, 2, `^$`, `--timeout "30x"`},
		{"import fails", []string{"-t", "--app", "brokenapp:app"}, 2, `^$`, `cannot import "brokenapp:app"`},
		{"no such module", []string{"-t", "--app", "nosuchmodule"}, 2, `^$`, "ModuleNotFoundError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "tcp4", "127.0.0.1")
			sock := filepath.Join(shortTempDir(t), "gw.sock")
			args := append([]string{"--chdir", apps, "--python", systemPython, "--workers", "4",
				"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--listen", "unix:" + sock}, tc.args...)
			code, stdout, stderr := runCheck(t, args)
			stderr = withoutRootWarning(stderr) // the tests run as root: its warning is due
			if code != tc.wantCode {
				t.Errorf("exit status %d, want %d; stderr %q", code, tc.wantCode, stderr)
			}
			if !regexp.MustCompile(tc.wantStdout).MatchString(stdout) {
				t.Errorf("stdout %q, want it to match %q", stdout, tc.wantStdout)
			}
			switch {
			case tc.wantStderr == "" && stderr != "":
				t.Errorf("stderr %q, want nothing", stderr)
			case tc.wantStderr != "" && (!strings.Contains(stderr, tc.wantStderr) || strings.Count(stderr, "\n") != 1):
				t.Errorf("stderr %q, want one line with %q", stderr, tc.wantStderr)
			}
			checkNothingListens(t, port, sock)
		})
	}

	// Beside the running gateway it checks, on the same address: that address in use is no
	// error, and the running gateway serves on.
	g := startGateway(t, gatewayConfig{workers: 1})
	code, stdout, stderr := runCheck(t, []string{"-t", "--app", "flaskapp:app", "--chdir", apps,
		"--python", systemPython, "--listen", "unix:" + g.address})
	if code != 0 || !strings.HasPrefix(stdout, "wsgi-fcgi: configuration ok") {
		t.Errorf("beside a running gateway: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	g.mustFcgiGet(t, "/query", "x=1")

	// During the import too: nothing listens.
	dir := shortTempDir(t)
	writeApp(t, dir, "one")
	marker := writeSlowApp(t, dir)
	port := freePort(t, "tcp4", "127.0.0.1")
	sock := filepath.Join(dir, "gw.sock")
	cmd := exec.Command(gatewayBin, "-t", "--app", "slowapp", "--chdir", dir, "--python", systemPython,
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--listen", "unix:"+sock)
	cmd.Env = gatewayEnv(nil)
	p := startProcess(t, "check-config", cmd)
	waitFile(t, p, marker)
	checkNothingListens(t, port, sock)
	<-p.done
	if !p.state.Success() || !strings.Contains(p.stdout.String(), "configuration ok: app slowapp imported") {
		t.Errorf("slow import: %v, stdout %q, stderr %q", p.state, p.stdout.String(), p.stderr.String())
	}
	checkNothingListens(t, port, sock)
}

// runCheck runs the gateway with args to its end and returns its exit status and output.
func runCheck(t *testing.T, args []string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewayBin, args...)
	cmd.Env = gatewayEnv(nil)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// checkNothingListens fails the test if anything accepts connections on the TCP port or made
// the unix socket file, and checks the port is free to listen on.
func checkNothingListens(t *testing.T, port int, sock string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("something listens on %s", addr)
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("the socket file %s exists", sock)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("%s is not free: %v", addr, err)
		return
	}
	l.Close()
}

// TestFcgidTouchReload deploys new code on the shared-hosting layout, under a real Apache with
// mod_fcgid, the way its README says: the code replaced, then the reload file touched. The
// gateway mod_fcgid started serves the new code within seconds, and no request fails.
func TestFcgidTouchReload(t *testing.T) {
	needPythonFlask(t)
	home := shortTempDir(t)
	os.Chmod(home, 0o755)
	site := filepath.Join(home, "public_html")
	bindir := filepath.Join(home, "bin")
	appdir := filepath.Join(home, "app")
	for _, d := range []string{site, bindir, appdir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, gatewayBin, filepath.Join(bindir, "wsgi-fcgi"), 0o755)
	writeApp(t, appdir, "one")
	touch := filepath.Join(appdir, "reload.txt")
	if err := os.WriteFile(touch, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wrapper := deployFile(t, "shared-hosting/app.fcgi",
		"/home/user/bin/wsgi-fcgi", filepath.Join(bindir, "wsgi-fcgi"),
		"--touch-reload /home/user/app/reload.txt", "--touch-reload "+touch,
		"--chdir /home/user/app", "--chdir "+appdir,
		"--app myapp.wsgi:application", "--app reloadapp:application")
	if err := os.WriteFile(filepath.Join(site, "app.fcgi"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(repoRoot(), "deploy", "shared-hosting", ".htaccess"), filepath.Join(site, ".htaccess"), 0o644)
	a := startApache(t, []string{"fcgid", "rewrite", "alias"}, func(port int) string {
		return deployFile(t, "shared-hosting/apache-host.conf",
			"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>", port),
			"/home/user/public_html", site,
			"FcgidIPCDir /run/mod_fcgid", "FcgidIPCDir "+filepath.Join(home, "fcgid"),
			"FcgidProcessTableFile /run/mod_fcgid/fcgid_shm", "FcgidProcessTableFile "+filepath.Join(home, "fcgid_shm"))
	})
	client := &http.Client{Timeout: 20 * time.Second}
	get := func() string {
		t.Helper()
		resp, err := client.Get(a.base + "/page")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET: %d %s", resp.StatusCode, body)
		}
		return string(body)
	}
	if got := get(); got != "one" {
		t.Fatalf("before the deploy: %q", got)
	}
	// The deploy: new code, then the touch, a second later so that the time surely differs.
	if err := os.WriteFile(filepath.Join(appdir, "version.py"), []byte(`VERSION = "two"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if got := get(); got != "one" {
		t.Fatalf("the new code was served before the touch: %q", got)
	}
	now := time.Now()
	if err := os.Chtimes(touch, now, now); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := get()
		if got == "two" {
			t.Logf("new code served %v after the touch", time.Since(now).Round(time.Millisecond))
			break
		}
		if got != "one" {
			t.Fatalf("answer %q", got)
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(a.dir, "error.log"))
			t.Fatalf("the new code was not served within 10s of the touch; Apache's error log:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSIGUSR1ReopensLogFile: the gateway's own log (--log-file) goes on in a new file after
// logrotate's rename and SIGUSR1; the renamed file keeps what came before.
func TestSIGUSR1ReopensLogFile(t *testing.T) {
	logFile := filepath.Join(shortTempDir(t), "error.log")
	g := startGateway(t, gatewayConfig{workers: 1, args: []string{"--log-file", logFile}})
	waitFileHas := func(name, s string) string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(name)
			if strings.Contains(string(b), s) {
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has no %q after 5s:\n%s\nstderr:\n%s", name, s, b, g.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFileHas(logFile, "listening")
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFileHas(logFile, "SIGUSR1: log files reopened")
	if old, _ := os.ReadFile(logFile + ".1"); !strings.Contains(string(old), "listening") || strings.Contains(string(old), "SIGUSR1") {
		t.Errorf("the renamed log:\n%s", old)
	}
	// And so do the lines after it: a reload's.
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFileHas(logFile, "reloaded")
	if s := g.stderr.String(); s != "" {
		t.Errorf("the gateway wrote to standard error:\n%s", s)
	}
}

// TestLogrotate runs logrotate with deploy/logrotate/wsgi-fcgi (the paths and the pid
// replaced) against a running gateway: the logs are renamed, SIGUSR1 sent, and the gateway
// goes on in new files, each request a line in exactly one access log.
func TestLogrotate(t *testing.T) {
	logrotate, err := exec.LookPath("logrotate")
	if err != nil {
		missingTool(t, "logrotate: %v", err)
	}
	dir := shortTempDir(t)
	access, errLog := filepath.Join(dir, "access.log"), filepath.Join(dir, "error.log")
	g := startGateway(t, gatewayConfig{workers: 1, args: []string{"--access-log", access, "--access-log-format", "{uri}", "--log-file", errLog}})
	conf := deployFile(t, "logrotate/wsgi-fcgi",
		"/var/log/wsgi-fcgi/access.log /var/log/wsgi-fcgi/error.log", access+" "+errLog,
		"$(systemctl show --property MainPID --value wsgi-fcgi.service 2>/dev/null)", strconv.Itoa(g.pid()))
	confFile := filepath.Join(dir, "logrotate.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLines := func(name string, want ...string) string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second) // the access log is flushed every second
		for {
			b, _ := os.ReadFile(name)
			missing := ""
			for _, w := range want {
				if !strings.Contains(string(b), w) {
					missing = w
				}
			}
			if missing == "" {
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has no %q after 5s:\n%s", name, missing, b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	g.mustFcgiGet(t, "/query", "n=1")
	waitLines(access, "/query?n=1\n")
	out, err := exec.Command(logrotate, "-f", "-s", filepath.Join(dir, "state"), confFile).CombinedOutput()
	if err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
	waitLines(errLog, "SIGUSR1: log files reopened")
	g.mustFcgiGet(t, "/query", "n=2")
	cur := waitLines(access, "/query?n=2\n")
	old := waitLines(access+".1", "/query?n=1\n")
	if cur != "/query?n=2\n" || old != "/query?n=1\n" {
		t.Errorf("rotated access log %q, new one %q; want each request in one", old, cur)
	}
	if b, _ := os.ReadFile(errLog + ".1"); !strings.Contains(string(b), "listening") {
		t.Errorf("the rotated gateway log lacks the start:\n%s", b)
	}
}
