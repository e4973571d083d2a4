//go:build linux

package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestWatchPython(t *testing.T) {
	root := t.TempDir()
	// write replaces a file at once (a rename): the watcher's look that runs on while the
	// next case changes files sees the file as it was or as it is, never half written.
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p+".tmp", []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
	}
	write("app.py", "a = 1\n")
	write("pkg/views.py", "v = 1\n")
	write("venv/pyvenv.cfg", "home = /usr/bin\n")
	write("venv/lib/site.py", "x\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	tick := make(chan time.Time) // unbuffered: a send returns once the watcher takes it
	go watchPython(ctx, []string{root}, tick, func(f string) { got <- f })
	tick <- time.Now() // the watcher has its first snapshot

	cases := []struct {
		name   string
		change func()
		want   string // "" when no reload may happen
	}{
		{"unrelated file", func() { write("README.txt", "x") }, ""},
		{"inside a virtualenv", func() { write("venv/lib/site.py", "changed and longer\n") }, ""},
		{"bytecode cache", func() { write("pkg/__pycache__/views.py", "x") }, ""},
		{"a module edited", func() { write("pkg/views.py", "v = 22\n") }, filepath.Join(root, "pkg/views.py")},
		{"a module added", func() { write("new.py", "n = 1\n") }, filepath.Join(root, "new.py")},
		{"a module removed", func() { os.Remove(filepath.Join(root, "app.py")) }, filepath.Join(root, "app.py")},
	}
	for _, tc := range cases {
		tc.change()
		tick <- time.Now() // look
		tick <- time.Now() // taken once the look before it is done, reload included
		f := ""
		select {
		case f = <-got:
		default:
		}
		if f != tc.want {
			t.Errorf("%s: reload for %q, want %q", tc.name, f, tc.want)
		}
	}
}

func TestWatchRoots(t *testing.T) {
	wd, _ := os.Getwd()
	if got := watchRoots("/srv/site", []string{"/srv/lib", "rel"}); !slices.Equal(got, []string{"/srv/site", "/srv/lib", filepath.Join(wd, "rel")}) {
		t.Errorf("with --chdir: %v", got)
	}
	if got := watchRoots("", nil); !slices.Equal(got, []string{wd}) {
		t.Errorf("without --chdir (the runner imports from the working directory): %v", got)
	}
}
