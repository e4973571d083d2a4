//go:build integration

// Process titles: ps tells the gateway, preload masters and workers apart, and two apps
// apart; and a virtualenv's interpreter still finds its packages under its title.

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procTitle is what ps shows of pid: its arguments joined by spaces (ps -o args, from
// /proc/PID/cmdline) and its command name (ps -o comm, top: /proc/PID/comm).
func procTitle(pid int) (args, comm string) {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	args = strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
	b, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return args, strings.TrimSuffix(string(b), "\n")
}

// wantTitle fails the test unless pid shows args and comm within a few seconds (a worker
// retitles itself as it starts).
func wantTitle(t *testing.T, what string, pid int, args, comm string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		gotArgs, gotComm := procTitle(pid)
		if gotArgs == args && gotComm == comm {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) shows args %q, comm %q; want %q, %q", what, pid, gotArgs, gotComm, args, comm)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProcessTitles(t *testing.T) {
	// Two gateways at once, two apps: one without --preload named by its module, one with
	// --preload named by --pool-name.
	plain, _ := startPMGateway(t, 2)
	dir := shortTempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "blog.py"), []byte(fmt.Sprintf(pmApp, "blog")), 0o644); err != nil {
		t.Fatal(err)
	}
	preload := startGateway(t, gatewayConfig{app: "blog", workers: 2,
		args: []string{"--chdir", dir, "--preload", "--pool-name", "mysite"}})

	for _, g := range []*gateway{plain, preload} {
		args, comm := procTitle(g.pid())
		if !strings.HasPrefix(args, gatewayBin+" ") || comm != "wsgi-fcgi" {
			t.Errorf("the gateway (pid %d) shows args %q, comm %q; want its own command line", g.pid(), args, comm)
		}
	}
	for _, pid := range plain.waitPythonWorkers(t, 2, nil, startTimeout) {
		wantTitle(t, "worker", pid, "wsgi-fcgi: worker [pmapp]", "worker pmapp")
	}
	workers := preload.waitPythonWorkers(t, 2, nil, startTimeout)
	master, _ := preload.pythonProcs()
	wantTitle(t, "preload master", master, "wsgi-fcgi: preload master [mysite]", "master mysite")
	for _, pid := range workers {
		wantTitle(t, "forked worker", pid, "wsgi-fcgi: worker [mysite]", "worker mysite")
	}
}

// venvApp answers sys.prefix and the name a module of the virtualenv's own holds.
const venvApp = `import sys, venvonly
def application(environ, start_response):
    body = ("%s %s" % (sys.prefix, venvonly.NAME)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`

// TestProcessTitleVirtualenv: a worker retitled by the runner is still the virtualenv's
// Python (sys.prefix) and imports what is installed only there.
func TestProcessTitleVirtualenv(t *testing.T) {
	needPythonFlask(t)
	dir := shortTempDir(t)
	venv := filepath.Join(dir, "venv")
	if out, err := exec.Command(systemPython, "-m", "venv", "--without-pip", venv).CombinedOutput(); err != nil {
		missingTool(t, "%s -m venv: %v: %s (Debian package python3-venv)", systemPython, err, out)
	}
	site, _ := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages"))
	if len(site) != 1 {
		t.Fatalf("site-packages of %s: %v", venv, site)
	}
	if err := os.WriteFile(filepath.Join(site[0], "venvonly.py"), []byte("NAME = 'from the venv'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "venvapp.py"), []byte(venvApp), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, preload := range []bool{false, true} {
		t.Run("preload="+strconv.FormatBool(preload), func(t *testing.T) {
			args := []string{"--chdir", dir, "--python", filepath.Join(venv, "bin", "python")}
			if preload {
				args = append(args, "--preload")
			}
			g := startGateway(t, gatewayConfig{app: "venvapp", workers: 1, args: args})
			if body := g.mustFcgiGet(t, "/", ""); body != venv+" from the venv" {
				t.Errorf("the app answers %q; want sys.prefix %s and the venv's module", body, venv)
			}
			for _, pid := range g.waitPythonWorkers(t, 1, nil, startTimeout) {
				wantTitle(t, "worker", pid, "wsgi-fcgi: worker [venvapp]", "worker venvapp")
			}
		})
	}
}
