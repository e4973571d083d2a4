//go:build integration

// --preload end to end: workers forked by a master that imported the app once; their
// replacement, reload with a new master, no process left after SIGKILL of the gateway; and the
// measurement docs/process-management.md quotes (a Django app: death-to-serving time and the PSS of 8 workers,
// preload against not).

package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// pythonProcs lists the live Python processes under the gateway: with --preload the master
// (a child) and its workers (grandchildren).
func (g *gateway) pythonProcs() (master int, workers []int) {
	for _, p := range testkit.Descendants(g.pid()) {
		if p.PPID == g.pid() && len(testkit.Children(p.PID)) > 0 {
			master = p.PID
			continue
		}
		workers = append(workers, p.PID)
	}
	return master, workers
}

// waitPythonWorkers polls until there are n workers (not counting a preload master).
func (g *gateway) waitPythonWorkers(t *testing.T, n int, exclude []int, timeout time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, ws := g.pythonProcs()
		ok := len(ws) == n
		for _, pid := range ws {
			ok = ok && !slices.Contains(exclude, pid)
		}
		if ok {
			return ws
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers %v after %v, want %d not in %v", ws, timeout, n, exclude)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPreload(t *testing.T) {
	g, dir := startPMGateway(t, 2, "--preload")
	master, workers := g.pythonProcs()
	if master == 0 || len(workers) != 2 {
		t.Fatalf("--preload: master %d, workers %v; want a master with 2 forked workers", master, workers)
	}
	for _, pid := range workers {
		if st, _ := testkit.ReadStat(pid); st.PPID != master {
			t.Errorf("worker %d has parent %d, want the master %d", pid, st.PPID, master)
		}
	}
	_, pid, _ := strings.Cut(g.mustFcgiGet(t, "/", ""), " ")
	if n, _ := strconv.Atoi(pid); !slices.Contains(workers, n) {
		t.Fatalf("answered by pid %s, not a forked worker %v", pid, workers)
	}

	// A killed worker is replaced by a fork, without an import.
	syscall.Kill(workers[0], syscall.SIGKILL)
	g.waitPythonWorkers(t, 2, workers[:1], 2*time.Second)
	g.mustFcgiGet(t, "/", "")

	// SIGHUP: a new master imports the new code; the old master and its workers go.
	writePMApp(t, dir, "v2")
	g.cmd.Process.Signal(syscall.SIGHUP)
	g.waitLog(t, "reloaded", 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m2, ws := g.pythonProcs()
		if m2 != 0 && m2 != master && len(ws) == 2 && len(testkit.Children(g.pid())) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: master %d (old %d), workers %v, children of the gateway %d", m2, master, ws, len(testkit.Children(g.pid())))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if body := g.mustFcgiGet(t, "/", ""); !strings.HasPrefix(body, "v2 ") {
		t.Errorf("after SIGHUP with --preload: %q, want v2", body)
	}
}

func TestPreloadGatewaySIGKILLLeavesNoProcess(t *testing.T) {
	needPythonFlask(t)
	dir := shortTempDir(t)
	writePMApp(t, dir, "v1")
	args, listen := gatewayArgs(t, gatewayConfig{app: "pmapp", workers: 3, args: []string{"--chdir", dir, "--preload"}})
	cmd := exec.Command(gatewayBin, args...)
	cmd.Env = gatewayEnv(nil)
	g := &gateway{process: startProcess(t, "gateway", cmd), workers: 3}
	g.network, g.address, g.upstream = parseListen(listen)
	if err := waitDial(g.process, g.network, g.address, startTimeout); err != nil {
		t.Fatal(err)
	}
	g.waitPythonWorkers(t, 3, nil, startTimeout)
	procs := testkit.Descendants(g.pid())
	sleeper := g.sleepers(1, "10")
	time.Sleep(300 * time.Millisecond)
	g.cmd.Process.Kill()
	<-g.done
	<-sleeper
	checkGone(t, procs) // master and workers
}

// djangoApp is a small but real Django site (admin, auth, sessions, messages; the admin
// imported) for the preload measurement; /pid answers the worker's pid.
const djangoApp = `import os
from django.conf import settings
settings.configure(
    DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="measure", USE_TZ=True,
    INSTALLED_APPS=["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                    "django.contrib.sessions", "django.contrib.messages"],
    MIDDLEWARE=["django.middleware.security.SecurityMiddleware",
                "django.contrib.sessions.middleware.SessionMiddleware",
                "django.middleware.common.CommonMiddleware",
                "django.middleware.csrf.CsrfViewMiddleware",
                "django.contrib.auth.middleware.AuthenticationMiddleware",
                "django.contrib.messages.middleware.MessageMiddleware"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
                "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                   "django.contrib.auth.context_processors.auth",
                                                   "django.contrib.messages.context_processors.messages"]}}],
)
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()  # django.setup(): the admin can be imported after it
from django.contrib import admin
from django.http import HttpResponse
from django.urls import path

def pid(request):
    return HttpResponse(str(os.getpid()))

urlpatterns = [path("admin/", admin.site.urls), path("pid", pid)]
`

// pssKiB reads Pss from /proc/PID/smaps_rollup.
func pssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/smaps_rollup has no Pss", pid)
}

// TestPreloadMeasure measures, with a Django app, preload against not: the PSS of 8 idle
// workers (and of the master) and the time from a worker's SIGKILL to its replacement
// answering. It fails unless preload wins both. docs/process-management.md quotes its output:
//
//	go test -tags integration -count=1 -run TestPreloadMeasure -v ./tests/
func TestPreloadMeasure(t *testing.T) {
	needPythonFlask(t)
	if err := exec.Command(systemPython, "-c", "import django").Run(); err != nil {
		missingTool(t, "%s cannot import django (Debian package python3-django): %v", systemPython, err)
	}
	type result struct {
		workersPSS, masterPSS int64
		replace               []time.Duration
	}
	measure := func(preload bool) result {
		var r result
		dir := shortTempDir(t)
		if err := os.WriteFile(filepath.Join(dir, "djmeasure.py"), []byte(djangoApp), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"--chdir", dir}
		if preload {
			args = append(args, "--preload")
		}
		// Memory: 8 idle workers, after some requests (the LIFO hand-out sends most to one).
		g := startGateway(t, gatewayConfig{app: "djmeasure", workers: 8, args: args})
		workers := g.waitPythonWorkers(t, 8, nil, 60*time.Second)
		for range 32 {
			g.mustFcgiGet(t, "/pid", "")
		}
		time.Sleep(500 * time.Millisecond)
		master, _ := g.pythonProcs()
		for _, pid := range workers {
			kb, err := pssKiB(pid)
			if err != nil {
				t.Fatal(err)
			}
			r.workersPSS += kb
		}
		if master != 0 {
			r.masterPSS, _ = pssKiB(master)
		}
		g.stop(t)

		// Death to serving: one worker, killed; a request sent at once waits for the
		// replacement. Spaced past the crash-loop age so that no backoff applies.
		g = startGateway(t, gatewayConfig{app: "djmeasure", workers: 1, args: args})
		for range 3 {
			ws := g.waitPythonWorkers(t, 1, nil, 30*time.Second)
			time.Sleep(2100 * time.Millisecond)
			g.mustFcgiGet(t, "/pid", "")
			start := time.Now()
			syscall.Kill(ws[0], syscall.SIGKILL)
			// The request must not reach the dying worker: wait until the pool saw the death.
			var body string
			for {
				r := g.fcgiGet("/pid", "")
				if r.err == nil && r.status == 200 {
					body = r.body
					break
				}
				if time.Since(start) > 30*time.Second {
					t.Fatalf("no answer after killing the worker: %d %v", r.status, r.err)
				}
			}
			if body == strconv.Itoa(ws[0]) {
				t.Fatalf("answered by the killed worker %s", body)
			}
			r.replace = append(r.replace, time.Since(start))
		}
		g.stop(t)
		slices.Sort(r.replace)
		return r
	}
	plain := measure(false)
	pre := measure(true)
	ms := func(ds []time.Duration) string {
		var s []string
		for _, d := range ds {
			s = append(s, fmt.Sprintf("%.0f", float64(d.Microseconds())/1000))
		}
		return strings.Join(s, ", ") + " ms"
	}
	t.Logf("Django, 8 workers, PSS of the workers: without --preload %.1f MiB; with --preload %.1f MiB (+ master %.1f MiB)",
		float64(plain.workersPSS)/1024, float64(pre.workersPSS)/1024, float64(pre.masterPSS)/1024)
	t.Logf("SIGKILL of a worker to its replacement answering: without --preload %s; with --preload %s", ms(plain.replace), ms(pre.replace))
	if pre.workersPSS+pre.masterPSS >= plain.workersPSS {
		t.Errorf("preload uses no less memory: %d KiB against %d KiB", pre.workersPSS+pre.masterPSS, plain.workersPSS)
	}
	if pre.replace[1] >= plain.replace[1] {
		t.Errorf("preload replaces no faster: median %v against %v", pre.replace[1], plain.replace[1])
	}
}
