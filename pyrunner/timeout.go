//go:build linux

// timeout.go: the Python stack dumps the per-request time limits log (the limits themselves
// are read deadlines of the channel's owner, owner.go), and the RSS reading behind
// Options.MaxRSS.

package pyrunner

import (
	"bytes"
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

// logSlow logs the stack of a worker whose request passed SlowTimeout; the request goes on.
func (w *worker) logSlow() {
	w.pool.st.slow.Add(1)
	stack := w.p.dumpStack()
	w.log.Warn("slow request: its Python stack follows (the request goes on)",
		"running", time.Since(w.startedAt).Round(time.Millisecond).String(), "request_id", w.requestID(), "uri", w.uri(), "stack", stack)
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

// peakResidentBytes reads a process's peak resident set size (VmHWM) from /proc/PID/status.
func peakResidentBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		v, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(v) // "1234 kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM line", pid)
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
