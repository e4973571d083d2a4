//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestTouchWatch drives --touch-reload's watcher with a tick channel the test owns: each
// step changes the file (or not), then makes the watcher look, and waits for what it saw.
func TestTouchWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "reload.txt")
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	at := func(p string, sec int) {
		t.Helper()
		when := base.Add(time.Duration(sec) * time.Second)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, content string, sec int) {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		at(p, sec)
	}

	var logs bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tick := make(chan time.Time)
	looked := make(chan string) // what each look saw, once it is done
	reloaded := make(chan string, 1)
	w := newTouchWatch(path, log)
	go poll(ctx, tick, func() string {
		f := w.look()
		looked <- f
		return f
	}, func(f string) { reloaded <- f })

	cases := []struct {
		name   string
		change func()
		reload bool
	}{
		{"missing at start", func() {}, false},
		{"made", func() { write(path, "", 0) }, true},
		{"left alone", func() {}, false},
		{"touched", func() { at(path, 1) }, true},
		{"another file in its directory", func() { write(filepath.Join(dir, "other"), "x", 5) }, false},
		{"replaced by a rename, same time and size", func() {
			write(path+".new", "", 1)
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"written, time kept", func() { write(path, "deployed", 1) }, true},
		{"removed", func() { os.Remove(path) }, false},
		{"still missing", func() {}, false},
		{"made again as it was", func() { write(path, "deployed", 1) }, true},
		{"touched back in time", func() { at(path, -10) }, true},
	}
	for _, tc := range cases {
		tc.change()
		tick <- time.Now()
		f := <-looked // the next change waits for this look: it never sees a file half made
		if f != "" {
			if r := <-reloaded; r != f {
				t.Errorf("%s: the look saw %q, the reload got %q", tc.name, f, r)
			}
		}
		if want := map[bool]string{true: path}[tc.reload]; f != want {
			t.Errorf("%s: reload for %q, want %q", tc.name, f, want)
		}
	}
	out := logs.String()
	for _, want := range []string{"the file does not exist yet", "the file is gone"} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", want, n, out)
		}
	}
}
