package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchPython(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
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
	go watchPython(ctx, []string{root}, 20*time.Millisecond, func(f string) { got <- f })
	time.Sleep(60 * time.Millisecond)

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
		select {
		case f := <-got:
			if f != tc.want {
				t.Errorf("%s: reload for %q, want %q", tc.name, f, tc.want)
			}
		case <-time.After(300 * time.Millisecond):
			if tc.want != "" {
				t.Errorf("%s: no reload", tc.name)
			}
		}
	}
}
