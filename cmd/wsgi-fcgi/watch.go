//go:build linux

// watch.go: --reload, for development: the workers are reloaded when a Python file under the
// app's directories changes. It polls modification times once a second (no inotify limits, no
// dependency), which is plenty for a person editing files.

package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// pySnapshot maps each .py file under the roots to its modification time and size.
type pySnapshot map[string][2]int64

// scanPython walks roots for .py files, skipping hidden directories, __pycache__ and
// virtualenvs (a directory holding pyvenv.cfg), which change without the app's code changing.
func scanPython(roots []string) pySnapshot {
	snap := pySnapshot{}
	for _, root := range roots {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				name := d.Name()
				if path != root && (strings.HasPrefix(name, ".") || name == "__pycache__" || name == "node_modules") {
					return filepath.SkipDir
				}
				if _, err := os.Stat(filepath.Join(path, "pyvenv.cfg")); err == nil {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(path, ".py") {
				if info, err := d.Info(); err == nil {
					snap[path] = [2]int64{info.ModTime().UnixNano(), info.Size()}
				}
			}
			return nil
		})
	}
	return snap
}

// changed returns a file that differs between two snapshots (added, removed or modified), or "".
func (s pySnapshot) changed(next pySnapshot) string {
	for path, v := range next {
		if old, ok := s[path]; !ok || old != v {
			return path
		}
	}
	for path := range s {
		if _, ok := next[path]; !ok {
			return path
		}
	}
	return ""
}

// watchPython calls reload (with the changed file) whenever a .py file under roots changes,
// looking at each tick, until ctx ends. Changes between two ticks are one reload.
func watchPython(ctx context.Context, roots []string, tick <-chan time.Time, reload func(file string)) {
	last := scanPython(roots)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		next := scanPython(roots)
		if f := last.changed(next); f != "" {
			reload(f)
		}
		last = next
	}
}

// reloadEvery is how often --reload looks for changed Python files.
const reloadEvery = time.Second

// watchRoots are the directories --reload watches: --chdir (else the working directory, which
// the runner puts first on sys.path) and the --pythonpath entries.
func watchRoots(chdir string, pythonPath []string) []string {
	var roots []string
	if chdir == "" {
		if wd, err := os.Getwd(); err == nil && wd != "/" {
			chdir = wd
		}
	}
	if chdir != "" {
		roots = append(roots, chdir)
	}
	for _, p := range pythonPath {
		if abs, err := filepath.Abs(p); err == nil {
			roots = append(roots, abs)
		}
	}
	return roots
}

// startReloadWatcher starts --reload's watcher, which sends each changed file on the channel
// the signal loop reads (as if SIGHUP had come). It returns nil when --reload is off: a nil
// channel is never ready.
func startReloadWatcher(ctx context.Context, on bool, roots []string, log hclog.Logger) <-chan string {
	if !on {
		return nil
	}
	changed := make(chan string, 1)
	log.Warn("--reload: the workers restart when a Python file changes (development only)", "dirs", roots)
	go func() {
		t := time.NewTicker(reloadEvery)
		defer t.Stop()
		watchPython(ctx, roots, t.C, func(file string) {
			select {
			case changed <- file:
			default: // a reload is already asked for; it will see this change too
			}
		})
	}()
	return changed
}
