// timeout.go: the per-request time limits (a read deadline on the worker's channel: no timer
// or goroutine of our own per request), the Python stack dumps they log, and the RSS reading
// behind Options.MaxRSS.

package pyrunner

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stack dumps: after SIGUSR1 the runner's faulthandler writes every thread's stack at once;
// the gateway reads until the pipe has been quiet for stackQuiet, for at most stackWait.
const (
	stackQuiet = 50 * time.Millisecond
	stackWait  = time.Second
)

// channelReader is what the worker's bufio.Reader reads from: the channel, with the request's
// deadlines applied. The first deadline passing (SlowTimeout) logs the stack and moves the
// deadline to Timeout; the last one fails the read with ErrTimeout. No bytes are lost: a
// deadline error comes only from a read that returned nothing.
type channelReader struct{ w *worker }

func (c channelReader) Read(b []byte) (int, error) {
	w := c.w
	for {
		n, err := w.conn.Read(b)
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if w.slowAt.IsZero() {
			return 0, fmt.Errorf("%w after %v", ErrTimeout, time.Since(w.reqStart).Round(time.Millisecond))
		}
		w.slowAt = time.Time{}
		w.logSlow()
		w.conn.SetReadDeadline(w.killAt) // zero when there is no hard limit
	}
}

// armDeadline sets the read deadline for a request starting now.
func (w *worker) armDeadline(req *Request, timeout, slow time.Duration) {
	now := time.Now()
	w.reqStart, w.req = now, req
	w.slowAt, w.killAt = time.Time{}, time.Time{}
	if timeout > 0 {
		w.killAt = now.Add(timeout)
	}
	if slow > 0 && (timeout == 0 || slow < timeout) {
		w.slowAt = now.Add(slow)
		w.conn.SetReadDeadline(w.slowAt)
		return
	}
	w.conn.SetReadDeadline(w.killAt)
}

// logSlow logs the stack of a worker whose request passed SlowTimeout; the request goes on.
func (w *worker) logSlow() {
	w.pool.st.slow.Add(1)
	stack := w.p.dumpStack()
	w.log.Warn("slow request: its Python stack follows (the request goes on)",
		"running", time.Since(w.reqStart).Round(time.Millisecond), "uri", w.req.lookup("REQUEST_URI"), "stack", stack)
}

// dumpStack asks the runner for every thread's Python stack (SIGUSR1, faulthandler) and
// returns it, or "" when none came.
func (w *process) dumpStack() string {
	if w.dump == nil || w.handle.Signal(syscall.SIGUSR1) != nil {
		return ""
	}
	end := time.Now().Add(stackWait)
	w.dump.SetReadDeadline(end)
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		n, err := w.dump.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			break
		}
		quiet := time.Now().Add(stackQuiet)
		if quiet.After(end) {
			quiet = end
		}
		w.dump.SetReadDeadline(quiet)
	}
	return strings.TrimRight(string(buf), "\n")
}

// residentBytes reads a process's resident set size from /proc/PID/statm.
func residentBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/statm: %q", pid, b)
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/statm: %w", pid, err)
	}
	return pages * int64(os.Getpagesize()), nil
}
