//go:build linux

package pyrunner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunnerSourceLeavesNothingOnDisk: the runner's source is an unlinked file, so nothing of
// the gateway's stays in the temp dir while it runs (a gateway killed by SIGKILL leaves
// nothing behind), and the runner started from it (python3 -c) sets itself up as it did from
// a file: the app's directory first on sys.path and no "" entry, the source not kept, its
// descriptor closed, and a multiprocessing "spawn" child of the app starts.
func TestRunnerSourceLeavesNothingOnDisk(t *testing.T) {
	python := realPython(t)
	chdir, err := filepath.Abs(filepath.Join("testdata", "runner"))
	if err != nil {
		t.Fatal(err)
	}
	for _, preload := range []bool{false, true} {
		t.Run(map[bool]string{false: "exec", true: "preload"}[preload], func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			p := startPool(t, Options{
				Python:       python,
				App:          "paths:app",
				Chdir:        chdir,
				Workers:      1,
				Preload:      preload,
				StartTimeout: 20 * time.Second,
				Env:          append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1"),
			})
			if left, err := os.ReadDir(tmp); err != nil || len(left) > 0 {
				t.Fatalf("temp dir holds %v (%v), want nothing", left, err)
			}
			req := new(Request)
			req.Reset()
			req.EnvString("REQUEST_METHOD", "GET")
			req.EnvString("PATH_INFO", "/spawn")
			var rec recorder
			if err := p.Do(context.Background(), req, &rec); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Path0       string `json:"path0"`
				CWD         string `json:"cwd"`
				EmptyOnPath bool   `json:"empty_on_path"`
				MainFile    string `json:"main_file"`
				SourceKept  bool   `json:"source_kept"`
				SpawnExit   *int   `json:"spawn_exit"`
			}
			if err := json.Unmarshal([]byte(rec.body.String()), &got); err != nil {
				t.Fatalf("%s: %q: %v", rec.status, rec.body.String(), err)
			}
			if got.Path0 != chdir || got.CWD != chdir || got.EmptyOnPath {
				t.Errorf("sys.path[0] %q, cwd %q, \"\" on sys.path %v; want %q first and no \"\"", got.Path0, got.CWD, got.EmptyOnPath, chdir)
			}
			if got.MainFile != "" || got.SourceKept {
				t.Errorf("__main__.__file__ %q, source kept %v", got.MainFile, got.SourceKept)
			}
			// A spawn child runs __main__ again from its __file__ when it has one.
			if got.SpawnExit == nil {
				t.Errorf("no exit status of the multiprocessing spawn child: %s", rec.body.String())
			} else if *got.SpawnExit != 0 {
				t.Errorf("a multiprocessing spawn child exited with %d, want 0", *got.SpawnExit)
			}
			// Every runner closed the source's descriptor once it had read it: the worker, and
			// the preload master that forked it.
			pids := []int{req.WorkerPID}
			p.masterMu.Lock()
			for _, slot := range p.masters {
				select {
				case <-slot.ready:
					if slot.m != nil {
						pids = append(pids, slot.m.pid)
					}
				default:
				}
			}
			p.masterMu.Unlock()
			for _, pid := range pids {
				if held := fdsOn(t, pid, "wsgi-fcgi-runner-"); len(held) > 0 {
					t.Errorf("pid %d still holds the runner's source: %v", pid, held)
				}
			}
		})
	}
}

// fdsOn lists pid's descriptors whose target names contain substr.
func fdsOn(t *testing.T, pid int, substr string) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list the descriptors of pid %d: %v", pid, err)
	}
	var held []string
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil && strings.Contains(target, substr) {
			held = append(held, e.Name()+" → "+target)
		}
	}
	return held
}
