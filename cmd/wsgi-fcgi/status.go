//go:build linux

// status.go: the wiring of the status page (--status-path): the pool's Snapshot as the
// gateway's Status.

package main

import (
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
		MemoryPeak:         snap.MemoryPeak,
		Starting:           snap.Starting * snap.Threads,
		Draining:           snap.Draining,
		HardTimeouts:       snap.HardTimeouts,
		SoftTimeouts:       snap.SoftTimeouts,
		Reloads:            snap.Reloads,
		FailedReloads:      snap.FailedReloads,
		MaxRSS:             snap.MaxRSS,
	}
	for c := range pyrunner.NumExitCauses {
		st.WorkerExits = append(st.WorkerExits, gateway.ExitCount{Cause: c.String(), Count: snap.Exits[c]})
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
