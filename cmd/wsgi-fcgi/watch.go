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
// until ctx ends. Changes within one poll interval are one reload.
func watchPython(ctx context.Context, roots []string, every time.Duration, reload func(file string)) {
	last := scanPython(roots)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := scanPython(roots)
		if f := last.changed(next); f != "" {
			reload(f)
		}
		last = next
	}
}
