// status.go: the wiring of the operator's tools that need the pool: the status page
// (--status-path: the pool's Snapshot as the gateway's Status) and --reload (the file watcher
// feeding the signal loop's reload).

package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wsgi-fcgi/wsgi-fcgi/gateway"
	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// poolStatus is the status page's source: the pool's snapshot in the gateway's terms. The
// gateway adds the pool name, its start time and the accepted requests.
type poolStatus struct{ pool *pyrunner.Pool }

func (s poolStatus) Status(full bool) gateway.Status {
	snap := s.pool.Snapshot(full)
	st := gateway.Status{
		ProcessManager:     snap.Mode.String(),
		ListenQueue:        snap.Waiting,
		MaxListenQueue:     snap.MaxWaiting,
		ListenQueueLen:     snap.QueueSize,
		IdleProcesses:      snap.Idle,
		ActiveProcesses:    snap.Active,
		TotalProcesses:     snap.Idle + snap.Active,
		MaxActiveProcesses: snap.MaxActive,
		MaxChildrenReached: snap.MaxChildrenReached,
		SlowRequests:       snap.SlowRequests,
	}
	for _, w := range snap.Workers {
		st.Processes = append(st.Processes, gateway.ProcessStatus{
			PID:             w.PID,
			State:           w.State,
			StartTime:       w.Started,
			Requests:        w.Requests,
			RequestDuration: w.Duration,
			RequestMethod:   w.Method,
			RequestURI:      w.URI,
			ContentLength:   w.ContentLength,
			RSS:             w.RSS,
		})
	}
	return st
}

// reloadEvery is how often --reload looks for changed Python files.
const reloadEvery = time.Second

// watchRoots are the directories --reload watches: --chdir (else the working directory, which
// the runner puts first on sys.path) and the --pythonpath entries.
func watchRoots(chdir string, pythonPath []string) []string {
	var roots []string
	if chdir == "" {
		if wd, err := os.Getwd(); err == nil && wd != "/" {
			chdir = wd
		}
	}
	if chdir != "" {
		roots = append(roots, chdir)
	}
	for _, p := range pythonPath {
		if abs, err := filepath.Abs(p); err == nil {
			roots = append(roots, abs)
		}
	}
	return roots
}

// startReloadWatcher starts --reload's watcher, which sends each changed file on the channel
// the signal loop reads (as if SIGHUP had come). It returns nil when --reload is off: a nil
// channel is never ready.
func startReloadWatcher(ctx context.Context, on bool, roots []string, log hclog.Logger) <-chan string {
	if !on {
		return nil
	}
	changed := make(chan string, 1)
	log.Warn("--reload: the workers restart when a Python file changes (development only)", "dirs", roots)
	go watchPython(ctx, roots, reloadEvery, func(file string) {
		select {
		case changed <- file:
		default: // a reload is already asked for; it will see this change too
		}
	})
	return changed
}
