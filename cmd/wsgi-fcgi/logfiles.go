//go:build linux

// logfiles.go: the log files the gateway writes (the access log, --access-log FILE), and
// their reopening on SIGUSR1, nginx's and gunicorn's convention: logrotate renames the file,
// sends SIGUSR1, and the gateway goes on in a new file of the same name, with no line lost or
// split and no copytruncate.

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/wsgi-fcgi/wsgi-fcgi/gateway"
)

// logFiles holds the access log and the file it writes to. Its methods may be called from
// any goroutine; the mutex keeps a reopen and the close from crossing.
type logFiles struct {
	access *gateway.AccessLog // nil: no access log
	path   string             // its file; "" when it writes to standard output

	mu     sync.Mutex
	file   *os.File
	closed bool
}

// openLogFiles opens the access log the settings ask for. With no access log, it returns a
// logFiles with nothing to reopen or close.
func openLogFiles(cfg *Config, stdout io.Writer) (*logFiles, error) {
	format, err := gateway.ParseAccessLogFormat(cfg.AccessLogFormat)
	if err != nil {
		return nil, fmt.Errorf("--access-log-format: %w", err)
	}
	switch cfg.AccessLog {
	case "":
		return &logFiles{}, nil
	case "-":
		return &logFiles{access: gateway.NewAccessLog(stdout, format)}, nil
	}
	f, err := openLogFile(cfg.AccessLog)
	if err != nil {
		return nil, fmt.Errorf("--access-log: %w", err)
	}
	return &logFiles{access: gateway.NewAccessLog(f, format), path: cfg.AccessLog, file: f}, nil
}

// openLogFile opens path for appending, creating it if need be.
func openLogFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// reopen opens the access log's file again by its name and writes to it from now on; the
// lines logged before are written to the old file, which is then closed. It reports whether
// there was a file to reopen. If the file cannot be opened, the log goes on in the old one
// and the error says why.
func (l *logFiles) reopen() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil || l.closed {
		return false, nil
	}
	f, err := openLogFile(l.path)
	if err != nil {
		return true, fmt.Errorf("reopen the access log: %w", err)
	}
	// An error here is the old file's last write; the new file is in use all the same.
	err = l.access.SetOutput(f)
	if errors.Is(err, gateway.ErrAccessLogClosed) {
		f.Close()
		return false, nil
	}
	old := l.file
	l.file = f
	if err := errors.Join(err, old.Close()); err != nil {
		return true, fmt.Errorf("the access log's old file: %w", err)
	}
	return true, nil
}

// close flushes the access log and closes its file.
func (l *logFiles) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.access == nil || l.closed {
		return nil
	}
	l.closed = true
	err := l.access.Close()
	if l.file != nil {
		err = errors.Join(err, l.file.Close())
	}
	return err
}
