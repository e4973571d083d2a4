//go:build linux

// counters.go: the pool's event counts for metrics: worker exits by cause, hard timeouts,
// reloads. They change on the pool's slow paths (a process ends, a request is killed, a
// reload finishes); Snapshot reads them.

package pyrunner

// ExitCause is why a worker process ended.
type ExitCause uint8

const (
	// ExitCrash: the process ended on its own while it should have been serving.
	ExitCrash ExitCause = iota
	// ExitKilled: the pool killed it (a request past Options.Timeout, a request that did
	// not stop when cancelled, a protocol error).
	ExitKilled
	// ExitStartFailed: it did not start (the app did not import, or it was too slow).
	ExitStartFailed
	// ExitMaxRequests: recycled after Options.MaxRequests.
	ExitMaxRequests
	// ExitMaxRSS: recycled over Options.MaxRSS.
	ExitMaxRSS
	// ExitIdle: stopped as idle (Options.IdleTimeout, or a surplus spare of Dynamic mode).
	ExitIdle
	// ExitReload: retired by a reload (or a new worker of a reload that failed).
	ExitReload
	// ExitShutdown: the pool shut down.
	ExitShutdown
	// NumExitCauses is the number of causes: Snapshot.Exits's length.
	NumExitCauses
)

// String is the cause as a metric label value.
func (c ExitCause) String() string {
	switch c {
	case ExitCrash:
		return "crash"
	case ExitKilled:
		return "killed"
	case ExitStartFailed:
		return "start_failed"
	case ExitMaxRequests:
		return "max_requests"
	case ExitMaxRSS:
		return "max_rss"
	case ExitIdle:
		return "idle"
	case ExitReload:
		return "reload"
	case ExitShutdown:
		return "shutdown"
	}
	return "unknown"
}

// MarshalText writes the cause by name, as String does: in JSON logs too.
func (c ExitCause) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// retireCause maps a retireLocked reason to its ExitCause.
func retireCause(reason string) ExitCause {
	switch reason {
	case "max requests":
		return ExitMaxRequests
	case "max rss":
		return ExitMaxRSS
	case "reload", "reload failed":
		return ExitReload
	}
	return ExitIdle // "idle timeout", "more idle workers than --pm-max-spare"
}

// eventCounts are the counters; the plain fields are guarded by Pool.mu.
type eventCounts struct {
	exits                  [NumExitCauses]uint64
	reloads, failedReloads uint64
	served                 uint64 // requests that reached the app, every worker of every generation
}

// noteExitLocked counts the end of pr, whose exit the supervisor has just seen.
func (p *Pool) noteExitLocked(pr *process) {
	c := ExitCrash
	switch {
	case p.closing:
		c = ExitShutdown
	case pr.retiring:
		c = retireCause(pr.retireReason)
	case pr.killed:
		c = ExitKilled
	}
	p.ev.exits[c]++
}
