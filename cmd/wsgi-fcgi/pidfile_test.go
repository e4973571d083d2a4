//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProcs is a process table: pid → command name.
func fakeProcs(self int, table map[int]string) procDB {
	return procDB{
		alive: func(pid int) bool { _, ok := table[pid]; return ok },
		comm:  func(pid int) string { return table[pid] },
		self:  self,
	}
}

// TestPIDFileOwner: a pid file names a live wsgi-fcgi, or is stale.
func TestPIDFileOwner(t *testing.T) {
	procs := fakeProcs(100, map[int]string{100: "wsgi-fcgi", 200: "wsgi-fcgi", 300: "bash", 400: "app.fcgi"})
	renamed := fakeProcs(100, map[int]string{100: "app.fcgi", 400: "app.fcgi"})
	for _, tc := range []struct {
		name      string
		content   string // "-": no file
		procs     procDB
		owner     int
		wantStale bool
	}{
		{name: "no file", content: "-", procs: procs},
		{name: "a live wsgi-fcgi", content: "200\n", procs: procs, owner: 200},
		{name: "a live wsgi-fcgi, no newline", content: "200", procs: procs, owner: 200},
		{name: "a binary renamed like this one", content: "400\n", procs: renamed, owner: 400},
		{name: "a dead process", content: "999\n", procs: procs, wantStale: true},
		{name: "a pid reused by another program", content: "300\n", procs: procs, wantStale: true},
		{name: "another program named like this one's parent", content: "400\n", procs: procs, wantStale: true},
		{name: "this process", content: "100\n", procs: procs, wantStale: true},
		{name: "not a pid", content: "hello\n", procs: procs, wantStale: true},
		{name: "empty", content: "", procs: procs, wantStale: true},
		{name: "negative", content: "-1\n", procs: procs, wantStale: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gw.pid")
			if tc.content != "-" {
				if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			owner, stale, err := pidFileOwner(path, tc.procs)
			if err != nil || owner != tc.owner || stale != tc.wantStale {
				t.Errorf("owner %d stale %v err %v, want %d %v", owner, stale, err, tc.owner, tc.wantStale)
			}
		})
	}
}

// TestPIDFileLifecycle: the file is written with this pid and nothing else in its directory,
// replaces a stale one, refuses a live one, and is removed only while it is still ours.
func TestPIDFileLifecycle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.pid")
	procs := fakeProcs(100, map[int]string{100: "wsgi-fcgi", 200: "wsgi-fcgi"})

	// Stale: replaced.
	os.WriteFile(path, []byte("999\n"), 0o644)
	pf, stale, err := writePIDFile(path, procs)
	if err != nil || !stale {
		t.Fatalf("over a stale file: stale %v err %v", stale, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "100\n" {
		t.Errorf("pid file holds %q, want %q", b, "100\n")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("pid file mode %v, want 0644", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the directory holds %d files, want the pid file alone (no temp file left)", len(ents))
	}

	// Live: refused, and the file is left alone.
	other := fakeProcs(300, map[int]string{100: "wsgi-fcgi", 300: "wsgi-fcgi"})
	if _, _, err := writePIDFile(path, other); err == nil || !strings.Contains(err.Error(), "pid 100 is running") {
		t.Errorf("over a live gateway's file: %v, want a refusal naming pid 100", err)
	}
	if reason := checkPIDFile(path, &other); !strings.Contains(reason, "wsgi-fcgi pid 100 is running") {
		t.Errorf("checkPIDFile: %q", reason)
	}
	if b, _ := os.ReadFile(path); string(b) != "100\n" {
		t.Errorf("the refused start changed the pid file: %q", b)
	}

	// Removed while ours; left when another gateway has taken it over.
	if err := pf.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("pid file still there after remove: %v", err)
	}
	pf2, _, err := writePIDFile(path, procs)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("200\n"), 0o644)
	if err := pf2.remove(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "200\n" {
		t.Errorf("removed another gateway's pid file: %q", b)
	}
	var none *pidFile
	if err := none.remove(); err != nil {
		t.Errorf("no pid file: %v", err)
	}
}

func TestCheckPIDFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	procs := fakeProcs(100, nil)
	for _, tc := range []struct{ path, want string }{
		{"", ""},
		{filepath.Join(dir, "gw.pid"), ""},
		{"/nonexistent/dir/gw.pid", "does not exist"},
		{dir, "a file, not a directory"},
		{filepath.Join(file, "gw.pid"), "is not one"},
	} {
		if got := checkPIDFile(tc.path, &procs); (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkPIDFile(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
