//go:build linux

// preload_test.go: preload masters and threads with the real runner.py (Python needed), so
// that preload.go runs under the race detector too.

package pyrunner

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// realPython returns the interpreter for tests of the real runner, or skips (fails when
// REQUIRE_INTEGRATION=1).
func realPython(t *testing.T) string {
	t.Helper()
	python := os.Getenv("RUNNER_PYTHON")
	if python == "" {
		python = "/usr/bin/python3"
	}
	if _, err := exec.LookPath(python); err != nil {
		if os.Getenv("REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("%s not found", python)
		}
		t.Skipf("%s not found", python)
	}
	return python
}

func TestPreloadWithThreads(t *testing.T) {
	opts := Options{
		Python:       realPython(t),
		App:          "hello:app",
		Chdir:        filepath.Join("testdata", "runner"),
		Workers:      2,
		Threads:      2,
		Preload:      true,
		StartTimeout: 20 * time.Second,
		Env:          append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1"),
	}
	if abs, err := filepath.Abs(opts.Chdir); err == nil {
		opts.Chdir = abs
	}
	lb := withLog(&opts)
	p := startPool(t, opts)
	if s := p.Snapshot(false); s.Processes != 2 || s.Idle != 4 {
		t.Fatalf("2 forked processes of 2 threads: %+v", s)
	}
	masterPID := func() int {
		p.masterMu.Lock()
		defer p.masterMu.Unlock()
		for _, slot := range p.masters {
			select {
			case <-slot.ready:
				if slot.m != nil {
					return slot.m.pid
				}
			default:
			}
		}
		return 0
	}
	master := masterPID()
	parent := func(pid int) int {
		b, _ := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		var ppid int
		for i, f := range splitStat(string(b)) {
			if i == 1 {
				ppid = atoi(f)
			}
		}
		return ppid
	}
	for _, pid := range p.PIDs() {
		if parent(pid) != master {
			t.Errorf("worker %d: parent %d, want the preload master %d", pid, parent(pid), master)
		}
	}
	doAll := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var rec recorder
				if err := p.Do(context.Background(), simpleRequest(), &rec); err != nil || rec.body.String() != "Hello, world!" {
					t.Errorf("request: %v %q", err, rec.body.String())
				}
			}()
		}
		wg.Wait()
	}
	doAll(8)

	// A killed worker is forked again, fast.
	victim := p.PIDs()[0]
	syscall.Kill(victim, syscall.SIGKILL)
	start := time.Now()
	waitFor(t, 5*time.Second, "the killed worker forked again", func() bool {
		got := p.PIDs()
		return len(got) == 2 && !slices.Contains(got, victim) && p.Snapshot(false).Idle == 4
	})
	t.Logf("killed worker replaced within %v", time.Since(start))
	doAll(4)

	// Reload: a new master; the old one exits with its workers.
	before := p.PIDs()
	if err := p.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the old master gone", func() bool {
		got := p.PIDs()
		return masterPID() != master && len(got) == 2 && !slices.Contains(got, before[0]) && !slices.Contains(got, before[1]) &&
			syscall.Kill(master, 0) != nil
	})
	doAll(4)
	if t.Failed() {
		t.Logf("log:\n%s", lb.String())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// splitStat splits /proc/PID/stat after the command name: state, ppid, ...
func splitStat(s string) []string {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// TestPreloadWorkerOutput: what a forked worker writes reaches the log with its own pid, not
// its master's: it has stdout and stderr of its own.
func TestPreloadWorkerOutput(t *testing.T) {
	opts := Options{
		Python:       realPython(t),
		App:          "wsgiapps:app",
		Chdir:        filepath.Join("testdata", "runner"),
		Workers:      1,
		Preload:      true,
		StartTimeout: 20 * time.Second,
		Env:          append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1"),
	}
	if abs, err := filepath.Abs(opts.Chdir); err == nil {
		opts.Chdir = abs
	}
	lb := new(logBuf)
	opts.Logger = hclog.New(&hclog.LoggerOptions{Output: lb, JSONFormat: true})
	p := startPool(t, opts)
	var rec recorder
	if err := p.Do(context.Background(), pathRequest("/print"), &rec); err != nil {
		t.Fatal(err)
	}
	worker := p.PIDs()[0]
	lines := map[string]string{"printed line 199 \x10": "stdout", "to stderr": "stderr"}
	found := map[string]map[string]any{}
	waitFor(t, 5*time.Second, "the worker's lines in the log", func() bool {
		for _, line := range strings.Split(lb.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) != nil {
				continue
			}
			for prefix := range lines {
				if msg, _ := e["@message"].(string); strings.HasPrefix(msg, prefix) {
					found[prefix] = e
				}
			}
		}
		return len(found) == len(lines)
	})
	for prefix, stream := range lines {
		e := found[prefix]
		if e["pid"] != float64(worker) || e["stream"] != stream || e["preload"] != true {
			t.Errorf("%q logged as %v; want pid %d (the forked worker), stream %s", prefix, e, worker, stream)
		}
	}
}
