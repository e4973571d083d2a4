// accesslog.go: the access log, off by default: one line per request in the format
// logformat.go renders, written through a buffer flushed every second.

package gateway

import (
	"bufio"
	"errors"
	"io"
	"sync"
	"time"
)

// AccessLog writes access log lines to w through a buffer that is flushed every second and on
// Close, so logging costs no write system call per request.
type AccessLog struct {
	format *AccessLogFormat

	mu  sync.Mutex
	buf *bufio.Writer
	err error // first write error, reported once by Close

	swap chan outputSwap // to the flusher, which owns the changes of output
	stop chan struct{}
	done chan struct{}
}

// outputSwap asks the flusher to write to w from now on; it answers on reply.
type outputSwap struct {
	w     io.Writer
	reply chan error
}

// NewAccessLog starts an access log writing lines of format to w; Close stops it.
func NewAccessLog(w io.Writer, format *AccessLogFormat) *AccessLog {
	l := &AccessLog{
		format: format,
		buf:    bufio.NewWriterSize(w, 64<<10),
		swap:   make(chan outputSwap),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go l.flusher()
	return l
}

// flusher is the goroutine that owns the buffer's flushes and its output.
func (l *AccessLog) flusher() {
	defer close(l.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			l.flushLocked()
			l.mu.Unlock()
		case s := <-l.swap:
			l.mu.Lock()
			err := l.buf.Flush()
			l.buf.Reset(s.w) // whatever did not reach the old output is dropped with it
			l.mu.Unlock()
			s.reply <- err
		}
	}
}

// flushLocked writes the buffer out, keeping the first error for Close.
func (l *AccessLog) flushLocked() {
	if err := l.buf.Flush(); err != nil && l.err == nil {
		l.err = err
	}
}

// SetOutput writes the lines logged from now on to w (a log file opened again after
// logrotate renamed it). The lines logged before are written to the old output first, so
// every line lands whole in one of the two; SetOutput returns the error of that last write,
// or ErrAccessLogClosed after Close. The caller may close the old output once it returns.
func (l *AccessLog) SetOutput(w io.Writer) error {
	s := outputSwap{w: w, reply: make(chan error, 1)}
	select {
	case l.swap <- s:
		return <-s.reply
	case <-l.done:
		return ErrAccessLogClosed
	}
}

// ErrAccessLogClosed: the access log was closed.
var ErrAccessLogClosed = errors.New("gateway: access log closed")

// Close flushes the log and stops its flusher; it returns the first write error, if any.
func (l *AccessLog) Close() error {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	return l.err
}

// log writes one line.
func (l *AccessLog) log(e *accessEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.format.appendLine(l.buf.AvailableBuffer(), e)
	l.buf.Write(b)
}
