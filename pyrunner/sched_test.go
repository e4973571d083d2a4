//go:build linux

package pyrunner

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestWorkerNice: with Options.WorkerNice every worker, spawned or forked by a preload master,
// runs at that nice value, whatever the gateway's (the real runner.py). The test asks for one
// step nicer than its own, which needs no privilege.
func TestWorkerNice(t *testing.T) {
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	own := 20 - prio // getpriority(2) returns 20 minus the nice value
	if own >= 19 {
		t.Skipf("already at nice %d: no higher value to ask for", own)
	}
	want := own + 1
	for _, preload := range []bool{false, true} {
		name := map[bool]string{false: "spawned", true: "preload"}[preload]
		t.Run(name, func(t *testing.T) {
			opts := Options{
				Python:       realPython(t),
				App:          "hello:app",
				Workers:      2,
				Preload:      preload,
				WorkerNice:   &want,
				StartTimeout: 20 * time.Second,
				Env:          append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1"),
			}
			dir, err := filepath.Abs(filepath.Join("testdata", "runner"))
			if err != nil {
				t.Fatal(err)
			}
			opts.Chdir = dir
			p := startPool(t, opts)
			pids := p.PIDs()
			if len(pids) != 2 {
				t.Fatalf("PIDs() = %v, want 2 workers", pids)
			}
			for _, pid := range pids {
				prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, pid)
				if err != nil {
					t.Fatalf("nice value of worker %d: %v", pid, err)
				}
				if got := 20 - prio; got != want {
					t.Errorf("worker %d at nice %d, want %d", pid, got, want)
				}
			}
		})
	}
}
