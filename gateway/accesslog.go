// accesslog.go: the access log, off by default: one line per request in the format
// logformat.go renders, written through a buffer flushed every second.

package gateway

import (
	"bufio"
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

	stop chan struct{}
	done chan struct{}
}

// NewAccessLog starts an access log writing lines of format to w; Close stops it.
func NewAccessLog(w io.Writer, format *AccessLogFormat) *AccessLog {
	l := &AccessLog{format: format, buf: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go l.flusher()
	return l
}

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
			if err := l.buf.Flush(); err != nil && l.err == nil {
				l.err = err
			}
			l.mu.Unlock()
		}
	}
}

// Close flushes the log and stops its flusher; it returns the first write error, if any.
func (l *AccessLog) Close() error {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.buf.Flush(); err != nil && l.err == nil {
		l.err = err
	}
	return l.err
}

// log writes one line.
func (l *AccessLog) log(e *accessEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.format.appendLine(l.buf.AvailableBuffer(), e)
	l.buf.Write(b)
}
