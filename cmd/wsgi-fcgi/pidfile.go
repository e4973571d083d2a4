//go:build linux

// pidfile.go: --pid-file. The gateway's pid, written once its listeners are bound (a temp
// file renamed into place, so a reader never sees half a number) and removed when it exits.
// A file naming another live wsgi-fcgi stops the start; a stale one is replaced.

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// procDB is what the pid file reads about other processes: a seam for tests.
type procDB struct {
	// alive reports whether a process with this pid exists.
	alive func(pid int) bool
	// comm is the process's command name (/proc/PID/comm), "" when unknown.
	comm func(pid int) string
	self int // this process's pid
}

var osProcs = procDB{
	alive: func(pid int) bool {
		err := syscall.Kill(pid, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	},
	comm: func(pid int) string {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	},
	self: os.Getpid(),
}

// pidFileOwner returns the pid of the live wsgi-fcgi that path names, or 0 when the file is
// absent or stale: unreadable as a pid, a process that has exited, this process, or a
// process that is not a wsgi-fcgi (a pid reused since). A process is a wsgi-fcgi when its
// command name is this one's or "wsgi-fcgi".
func pidFileOwner(path string, procs procDB) (pid int, stale bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || pid == procs.self || !procs.alive(pid) {
		return 0, true, nil
	}
	comm := procs.comm(pid)
	if comm == "" || (comm != "wsgi-fcgi" && comm != procs.comm(procs.self)) {
		return 0, true, nil
	}
	return pid, false, nil
}

// checkPIDFile returns what is wrong with writing the pid file path, or "": a directory the
// gateway cannot write to, or a file naming a live wsgi-fcgi (when procs is not nil).
func checkPIDFile(path string, procs *procDB) string {
	if path == "" {
		return ""
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return "a file, not a directory or a device"
	}
	// The file is replaced by a rename: its directory must be writable, not the file.
	if reason := checkFileDir(path); reason != "" {
		return reason
	}
	if procs == nil {
		return ""
	}
	pid, _, err := pidFileOwner(path, *procs)
	switch {
	case err != nil:
		return "a pid file the gateway can read (" + errText(err) + ")"
	case pid != 0:
		return fmt.Sprintf("a pid file no running gateway holds (wsgi-fcgi pid %d is running with it)", pid)
	}
	return ""
}

// pidFile is a pid file this process wrote.
type pidFile struct {
	path string
	pid  int
}

// writePIDFile writes pid into path: a temp file in the same directory, renamed over path.
// stale reports that it replaced a file left by a process that is gone.
func writePIDFile(path string, procs procDB) (_ *pidFile, stale bool, err error) {
	owner, stale, err := pidFileOwner(path, procs)
	if err != nil {
		return nil, false, fmt.Errorf("--pid-file: %w", err)
	}
	if owner != 0 {
		return nil, false, fmt.Errorf("--pid-file %s: wsgi-fcgi pid %d is running with it", path, owner)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, false, fmt.Errorf("--pid-file: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	_, err = fmt.Fprintf(tmp, "%d\n", procs.self)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("--pid-file: %w", err)
	}
	return &pidFile{path: path, pid: procs.self}, stale, nil
}

// remove deletes the pid file if it still holds this process's pid (another gateway may
// have taken it over since). A nil pidFile is no file.
func (f *pidFile) remove() error {
	if f == nil {
		return nil
	}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	if strings.TrimSpace(string(b)) != strconv.Itoa(f.pid) {
		return nil
	}
	if err := os.Remove(f.path); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	return nil
}
