//go:build linux

// preload_test.go: preload masters and threads with the real runner.py (Python needed), so
// that preload.go runs under the race detector too.

package pyrunner

import (
	"context"
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
