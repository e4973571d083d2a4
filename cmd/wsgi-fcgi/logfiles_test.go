//go:build linux

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLogFilesReopen: after a rename, reopen makes a new file by the name; a reopen that
// fails keeps the old file; with no file, or once closed, there is nothing to reopen.
func TestLogFilesReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	logs, err := openLogFiles(&Config{AccessLog: path, AccessLogFormat: "combined"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		before func() error
		wantOK bool // a file was reopened, or an error
		fails  bool
	}{
		{"renamed", func() error { return os.Rename(path, path+".1") }, true, false},
		{"a directory in its place", func() error {
			if err := os.Rename(path, path+".2"); err != nil {
				return err
			}
			return os.Mkdir(path, 0o755)
		}, true, true},
		{"the name free again", func() error { return os.Remove(path) }, true, false},
	}
	for _, s := range steps {
		if err := s.before(); err != nil {
			t.Fatal(err)
		}
		old := logs.file
		ok, err := logs.reopen()
		if ok != s.wantOK || (err != nil) != s.fails {
			t.Errorf("%s: reopen = %v, %v; want %v and an error %v", s.name, ok, err, s.wantOK, s.fails)
		}
		if changed := logs.file != old; changed == s.fails {
			t.Errorf("%s: file changed %v", s.name, changed)
		}
		if fi, err := os.Stat(path); !s.fails && (err != nil || fi.IsDir()) {
			t.Errorf("%s: no new file: %v", s.name, err)
		}
	}
	if err := logs.close(); err != nil {
		t.Fatal(err)
	}
	if ok, err := logs.reopen(); ok || err != nil {
		t.Errorf("reopen after close: %v %v, want nothing to do", ok, err)
	}
	none, err := openLogFiles(&Config{AccessLogFormat: "combined"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := none.reopen(); ok || err != nil {
		t.Errorf("reopen with no access log: %v %v, want nothing to do", ok, err)
	}
	if err := none.close(); err != nil {
		t.Error(err)
	}
}
