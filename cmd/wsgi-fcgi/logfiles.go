//go:build linux

// logfiles.go: the log files the gateway writes — its own log (--log-file FILE, else standard
// error) and the access log (--access-log FILE) — and their reopening on SIGUSR1, nginx's and
// gunicorn's convention: logrotate renames a file, sends SIGUSR1, and the gateway goes on in
// a new file of the same name, with no line lost or split and no copytruncate.

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/wsgi-fcgi/wsgi-fcgi/gateway"
)

// logFiles holds the log files. Its methods may be called from any goroutine; the mutex keeps
// a reopen and a close from crossing.
type logFiles struct {
	// gatewayLog is what the gateway's logger writes to: standard error, or the file of
	// --log-file behind a writer whose file a reopen changes.
	gatewayLog io.Writer
	access     *gateway.AccessLog // nil: no access log

	mu          sync.Mutex
	gatewayFile *swapFile // nil: standard error
	accessFile  *os.File  // nil: no access log, or standard output
	accessPath  string
	closed      bool // the access log
}

// swapFile is a log file that a reopen replaces. Each Write goes whole to one file: the
// logger writes a record in one Write.
type swapFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// Write writes p to the current file.
func (s *swapFile) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Write(p)
}

// reopen opens the file again by its name and closes the old one; on error the old one stays.
func (s *swapFile) reopen() error {
	f, err := openLogFile(s.path)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.f
	s.f = f
	s.mu.Unlock()
	return old.Close()
}

// close closes the current file.
func (s *swapFile) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}

// openGatewayLog opens the file of --log-file, if it names one ("" and "-" are standard error).
func openGatewayLog(cfg *Config, stderr io.Writer) (*logFiles, error) {
	l := &logFiles{gatewayLog: stderr}
	if cfg.LogFile == "" || cfg.LogFile == "-" {
		return l, nil
	}
	f, err := openLogFile(cfg.LogFile)
	if err != nil {
		return nil, fmt.Errorf("--log-file: %w", err)
	}
	l.gatewayFile = &swapFile{path: cfg.LogFile, f: f}
	l.gatewayLog = l.gatewayFile
	return l, nil
}

// openAccessLog opens the access log the settings ask for, if any.
func (l *logFiles) openAccessLog(cfg *Config, stdout io.Writer) error {
	format, err := gateway.ParseAccessLogFormat(cfg.AccessLogFormat)
	if err != nil {
		return fmt.Errorf("--access-log-format: %w", err)
	}
	switch cfg.AccessLog {
	case "":
		return nil
	case "-":
		l.access = gateway.NewAccessLog(stdout, format)
		return nil
	}
	f, err := openLogFile(cfg.AccessLog)
	if err != nil {
		return fmt.Errorf("--access-log: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.access, l.accessFile, l.accessPath = gateway.NewAccessLog(f, format), f, cfg.AccessLog
	return nil
}

// openLogFile opens path for appending, creating it if need be.
func openLogFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// reopen opens each log file again by its name and writes to it from now on; what was logged
// before goes to the old file, which is then closed. It returns the files reopened. A file
// that cannot be opened is an error, and its log goes on in the old file.
func (l *logFiles) reopen() ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var reopened []string
	var errs []error
	if l.gatewayFile != nil {
		if err := l.gatewayFile.reopen(); err != nil {
			errs = append(errs, fmt.Errorf("the gateway's log: %w", err))
		} else {
			reopened = append(reopened, l.gatewayFile.path)
		}
	}
	if l.accessFile != nil && !l.closed {
		if err := l.reopenAccessLocked(); err != nil {
			errs = append(errs, fmt.Errorf("the access log: %w", err))
		} else {
			reopened = append(reopened, l.accessPath)
		}
	}
	return reopened, errors.Join(errs...)
}

// reopenAccessLocked reopens the access log's file.
func (l *logFiles) reopenAccessLocked() error {
	f, err := openLogFile(l.accessPath)
	if err != nil {
		return err
	}
	// An error here is the old file's last write; the new file is in use all the same.
	err = l.access.SetOutput(f)
	if errors.Is(err, gateway.ErrAccessLogClosed) {
		return errors.Join(err, f.Close())
	}
	old := l.accessFile
	l.accessFile = f
	if err := errors.Join(err, old.Close()); err != nil {
		return fmt.Errorf("old file: %w", err)
	}
	return nil
}

// closeAccess flushes the access log and closes its file.
func (l *logFiles) closeAccess() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.access == nil || l.closed {
		return nil
	}
	l.closed = true
	err := l.access.Close()
	if l.accessFile != nil {
		err = errors.Join(err, l.accessFile.Close())
	}
	return err
}

// closeGatewayLog closes the file of --log-file; the logger must not write after it.
func (l *logFiles) closeGatewayLog() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gatewayFile == nil {
		return nil
	}
	return l.gatewayFile.close()
}
