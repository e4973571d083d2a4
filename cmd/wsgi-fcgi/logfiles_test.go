//go:build linux

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestLogFilesReopen: after logrotate's rename, reopen makes new files by the names and the
// gateway's log goes on in the new one; a reopen that fails keeps the old file; with no file,
// or once closed, there is nothing to reopen.
func TestLogFilesReopen(t *testing.T) {
	dir := t.TempDir()
	access := filepath.Join(dir, "access.log")
	errLog := filepath.Join(dir, "error.log")
	cfg := &Config{AccessLog: access, LogFile: errLog, AccessLogFormat: "combined"}
	logs, err := openGatewayLog(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := logs.openAccessLog(cfg, nil); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		t.Helper()
		if _, err := logs.gatewayLog.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		t.Helper()
		b, _ := os.ReadFile(name)
		return string(b)
	}
	write("before\n")
	steps := []struct {
		name   string
		before func() error
		want   []string // the files reopened
		fails  bool
	}{
		{"renamed", func() error {
			if err := os.Rename(access, access+".1"); err != nil {
				return err
			}
			return os.Rename(errLog, errLog+".1")
		}, []string{errLog, access}, false},
		{"a directory in the access log's place", func() error {
			if err := os.Rename(access, access+".2"); err != nil {
				return err
			}
			return os.Mkdir(access, 0o755)
		}, []string{errLog}, true},
		{"the name free again", func() error { return os.Remove(access) }, []string{errLog, access}, false},
	}
	for _, s := range steps {
		if err := s.before(); err != nil {
			t.Fatal(err)
		}
		old := logs.accessFile
		got, err := logs.reopen()
		if !slices.Equal(got, s.want) || (err != nil) != s.fails {
			t.Errorf("%s: reopen = %v, %v; want %v and an error %v", s.name, got, err, s.want, s.fails)
		}
		if changed := logs.accessFile != old; changed == s.fails {
			t.Errorf("%s: access log file changed %v", s.name, changed)
		}
		if fi, err := os.Stat(access); !s.fails && (err != nil || fi.IsDir()) {
			t.Errorf("%s: no new access log: %v", s.name, err)
		}
	}
	write("after\n")
	if got, want := read(errLog+".1"), "before\n"; got != want {
		t.Errorf("the renamed gateway log holds %q, want %q", got, want)
	}
	if got, want := read(errLog), "after\n"; got != want {
		t.Errorf("the new gateway log holds %q, want %q", got, want)
	}
	if err := logs.closeAccess(); err != nil {
		t.Fatal(err)
	}
	if got, err := logs.reopen(); !slices.Equal(got, []string{errLog}) || err != nil {
		t.Errorf("reopen after the access log's close: %v %v, want the gateway's log only", got, err)
	}
	if err := logs.closeGatewayLog(); err != nil {
		t.Error(err)
	}

	var stderr bytes.Buffer
	none, err := openGatewayLog(&Config{LogFile: "-"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if err := none.openAccessLog(&Config{AccessLogFormat: "combined"}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := none.reopen(); len(got) != 0 || err != nil {
		t.Errorf("reopen with no log file: %v %v, want nothing to do", got, err)
	}
	if none.gatewayLog != &stderr {
		t.Error("--log-file - is not standard error")
	}
	if err := errors.Join(none.closeAccess(), none.closeGatewayLog()); err != nil {
		t.Error(err)
	}
}
