// accesslog.go: the access log, off by default: one line per request in the combined format
// web servers write, or one JSON object per line, with the time the request took.

package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// AccessLogFormat names a line format.
type AccessLogFormat int

const (
	// AccessLogCombined is the "combined" format of Apache and nginx, followed by the request
	// time in seconds: host - user [time] "request" status bytes "referer" "user-agent" secs.
	AccessLogCombined AccessLogFormat = iota
	// AccessLogJSON is one JSON object per line.
	AccessLogJSON
)

// AccessLog writes access log lines to w through a buffer that is flushed every second and on
// Close, so logging costs no write system call per request.
type AccessLog struct {
	format AccessLogFormat

	mu  sync.Mutex
	buf *bufio.Writer
	err error // first write error, reported once by Close

	stop chan struct{}
	done chan struct{}
}

// NewAccessLog starts an access log writing to w; Close stops it.
func NewAccessLog(w io.Writer, format AccessLogFormat) *AccessLog {
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

// accessEntry is what one line says about a request.
type accessEntry struct {
	start     time.Time
	duration  time.Duration
	remote    []byte
	user      []byte
	method    []byte
	uri       []byte
	protocol  []byte
	status    int
	bytes     int64
	referer   []byte
	userAgent []byte
	workerPID int
}

// log writes one line.
func (l *AccessLog) log(e *accessEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.AvailableBuffer()
	if l.format == AccessLogJSON {
		b = appendJSONEntry(b, e)
	} else {
		b = appendCombined(b, e)
	}
	l.buf.Write(b)
}

// appendCombined: %h - %u [%t] "%r" %>s %b "%{Referer}i" "%{User-Agent}i" and the seconds taken.
func appendCombined(b []byte, e *accessEntry) []byte {
	b = appendOr(b, e.remote, "-")
	b = append(b, " - "...)
	b = appendOr(b, e.user, "-")
	b = append(b, " ["...)
	b = e.start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendEscaped(b, e.method)
	b = append(b, ' ')
	b = appendEscaped(b, e.uri)
	b = append(b, ' ')
	b = appendEscaped(b, e.protocol)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, ' ')
	if e.bytes == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, e.bytes, 10)
	}
	b = append(b, " \""...)
	b = appendEscaped(b, orDash(e.referer))
	b = append(b, "\" \""...)
	b = appendEscaped(b, orDash(e.userAgent))
	b = append(b, "\" "...)
	b = strconv.AppendFloat(b, e.duration.Seconds(), 'f', 6, 64)
	return append(b, '\n')
}

func appendJSONEntry(b []byte, e *accessEntry) []byte {
	v := struct {
		Time      string  `json:"time"`
		Remote    string  `json:"remote_addr"`
		User      string  `json:"remote_user,omitempty"`
		Method    string  `json:"method"`
		URI       string  `json:"uri"`
		Protocol  string  `json:"protocol"`
		Status    int     `json:"status"`
		Bytes     int64   `json:"bytes"`
		Referer   string  `json:"referer,omitempty"`
		UserAgent string  `json:"user_agent,omitempty"`
		Seconds   float64 `json:"request_time"`
		WorkerPID int     `json:"worker_pid,omitempty"`
	}{
		Time: e.start.Format(time.RFC3339Nano), Remote: string(e.remote), User: string(e.user),
		Method: string(e.method), URI: string(e.uri), Protocol: string(e.protocol), Status: e.status,
		Bytes: e.bytes, Referer: string(e.referer), UserAgent: string(e.userAgent),
		Seconds: e.duration.Seconds(), WorkerPID: e.workerPID,
	}
	out, err := json.Marshal(v)
	if err != nil {
		return fmt.Appendf(b, "{\"error\":%q}\n", err.Error())
	}
	return append(append(b, out...), '\n')
}

func orDash(v []byte) []byte {
	if len(v) == 0 {
		return []byte("-")
	}
	return v
}

func appendOr(b, v []byte, dflt string) []byte {
	if len(v) == 0 {
		return append(b, dflt...)
	}
	return appendEscaped(b, v)
}

// appendEscaped copies v, escaping what would let a client forge a log line or a field: quotes,
// backslashes, control and non-ASCII bytes become \xHH (as nginx escapes them).
func appendEscaped(b, v []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}
