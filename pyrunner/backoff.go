//go:build linux

// backoff.go: telling a crash from a requested exit, and the crash-loop back-off.

package pyrunner

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// crashedLocked counts a process that died or failed to start, and backs off when processes
// die young: the delay doubles at most once per step and each step is logged once.
func (p *Pool) crashedLocked(pr *process, cause error) {
	now := time.Now()
	lived := now.Sub(pr.started)
	if pr.started.IsZero() || lived < crashLoopAge {
		p.deaths++
		if now.Before(p.nextSpawn) {
			return // already waiting out this step
		}
		p.backoff = min(max(2*p.backoff, minBackoff), maxBackoff)
		p.nextSpawn = now.Add(p.backoff)
		args := []any{"cause", ExitCrash, "error", cause, "deaths", p.deaths, "retry_in", p.backoff.String()}
		var le *LoadError
		if errors.As(cause, &le) && le.Traceback != "" {
			args = append(args, "traceback", le.Traceback)
		}
		log := p.log
		if pr.log != nil {
			log = pr.log // it started: its line names its pid
		}
		log.Error("workers are failing young: backing off", args...)
		p.deaths = 0
		return
	}
	p.backoff = 0
	p.deaths = 0
	pr.log.Warn("worker exited", "cause", ExitCrash, "error", cause, "lived", lived.Round(time.Millisecond).String(), "served", pr.served)
}

// Crash-loop backoff: a process that dies within crashLoopAge of its start counts as a crash
// loop; the delay before the next spawn doubles from minBackoff up to maxBackoff.
const (
	crashLoopAge = 2 * time.Second
	minBackoff   = 100 * time.Millisecond
	maxBackoff   = 30 * time.Second
)

// exitCause describes how a process ended; a SIGKILL the pool did not send (ours false) is
// most often the kernel's OOM killer, as gunicorn's arbiter says too.
func exitCause(err error, ours bool) string {
	if err == nil {
		return "exited 0"
	}
	var ws syscall.WaitStatus
	var ee *exec.ExitError
	var ps waitStatus
	switch {
	case errors.As(err, &ee):
		ws, _ = ee.Sys().(syscall.WaitStatus)
	case errors.As(err, &ps):
		ws = syscall.WaitStatus(ps)
	}
	if ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		if ours {
			return err.Error() + " (by the gateway)"
		}
		return err.Error() + " (killed from outside the gateway: out of memory?)"
	}
	return err.Error()
}
