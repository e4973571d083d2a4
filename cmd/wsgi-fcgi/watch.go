//go:build linux

// watch.go: the watchers that reload the workers as SIGHUP does: --reload, for development,
// when a Python file under the app's directories changes, and --touch-reload (touch.go) when
// one file does. Both poll once a second (no inotify limits, no dependency), which is plenty
// for a person editing files or a deploy script.

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
	poll(ctx, tick, func() string {
		next := scanPython(roots)
		f := last.changed(next)
		last = next
		return f
	}, reload)
}

// poll is the loop of the watchers (--reload, --touch-reload): at each tick it calls look,
// and reload with what look says changed ("": nothing), until ctx ends.
func poll(ctx context.Context, tick <-chan time.Time, look func() string, reload func(file string)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		if f := look(); f != "" {
			reload(f)
		}
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

// reloadAsk is a reload a watcher asks for: why, for the log line, and the file that changed.
type reloadAsk struct {
	why  string
	file string
}

// startWatchers starts --reload's watcher when on is set and --touch-reload's when touch is
// a path. Each looks once a second, in a goroutine of its own that ends with ctx, and sends
// what it saw on the one channel the signal loop reads (as if SIGHUP had come). With neither,
// the channel is nil, which is never ready.
func startWatchers(ctx context.Context, on bool, roots []string, touch string, log hclog.Logger) <-chan reloadAsk {
	if !on && touch == "" {
		return nil
	}
	asks := make(chan reloadAsk, 1)
	send := func(a reloadAsk) {
		select {
		case asks <- a:
		default: // a reload is already asked for; it will see this change too
		}
	}
	every := func(watch func(tick <-chan time.Time)) {
		t := time.NewTicker(reloadEvery)
		defer t.Stop()
		watch(t.C)
	}
	if on {
		log.Warn("--reload: the workers restart when a Python file changes (development only)", "dirs", roots)
		go every(func(tick <-chan time.Time) {
			watchPython(ctx, roots, tick, func(file string) {
				send(reloadAsk{why: "--reload: a Python file changed", file: file})
			})
		})
	}
	if touch != "" {
		if abs, err := filepath.Abs(touch); err == nil {
			touch = abs // as the log lines name it
		}
		w := newTouchWatch(touch, log)
		go every(func(tick <-chan time.Time) {
			poll(ctx, tick, w.look, func(file string) {
				send(reloadAsk{why: "--touch-reload: the file changed", file: file})
			})
		})
	}
	return asks
}
