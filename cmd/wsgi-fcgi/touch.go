//go:build linux

// touch.go: --touch-reload FILE, uWSGI's: a graceful reload when FILE changes, for a gateway
// its user cannot send signals to (mod_fcgid on shared hosting started it). The file is
// looked at once a second with stat(2) rather than watched with inotify: an inotify watch
// follows one inode, so a file replaced by a rename, deleted and made again, or reached
// through a symlink that a deploy switches, needs its directory watched as well; and the
// network file systems home directories often live on report no events for changes made on
// another machine. One stat a second costs nothing.

package main

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// fileIdentity is what --touch-reload compares between two looks: a change of any field is
// a reload. The device and inode tell a file replaced by another (a rename, a symlink
// switched) even when its time and size are the same.
type fileIdentity struct {
	exists   bool
	dev, ino uint64
	size     int64
	mtime    int64 // nanoseconds since the epoch
}

// statIdentity is path's identity, following symlinks; a missing file is the zero identity
// with no error.
func statIdentity(path string) (fileIdentity, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileIdentity{}, nil
	}
	if err != nil {
		return fileIdentity{}, err
	}
	id := fileIdentity{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = st.Dev, st.Ino
	}
	return id, nil
}

// touchWatch is --touch-reload's watcher: its look reports the file when it was touched,
// replaced or made since the last look. A file that goes away is not a reload (nothing new
// to serve); it is logged once, and its return is one.
type touchWatch struct {
	path   string
	log    hclog.Logger
	last   fileIdentity
	lastOK bool // the last look could stat the file (or saw it missing)
}

// newTouchWatch takes the first look at path; a file that does not exist yet, or cannot be
// read, is a warning, once.
func newTouchWatch(path string, log hclog.Logger) *touchWatch {
	w := &touchWatch{path: path, log: log}
	id, err := statIdentity(path)
	w.last, w.lastOK = id, err == nil
	switch {
	case err != nil:
		log.Warn("--touch-reload: cannot look at the file; it is looked at again every second", "file", path, "error", err)
	case !id.exists:
		log.Warn("--touch-reload: the file does not exist yet; making it will reload the workers", "file", path)
	default:
		log.Info("--touch-reload: touching the file reloads the workers", "file", path)
	}
	return w
}

// look returns the path when the file changed since the last look and exists now, else "".
func (w *touchWatch) look() string {
	id, err := statIdentity(w.path)
	switch {
	case err != nil:
		if w.lastOK {
			w.log.Warn("--touch-reload: cannot look at the file", "file", w.path, "error", err)
		}
		w.lastOK = false
		return "" // w.last is kept: the file as it was when last seen
	case !id.exists:
		if w.last.exists {
			w.log.Warn("--touch-reload: the file is gone; making it again will reload the workers", "file", w.path)
		}
		w.last, w.lastOK = id, true
		return ""
	}
	changed := id != w.last
	w.last, w.lastOK = id, true
	if changed {
		return w.path
	}
	return ""
}
