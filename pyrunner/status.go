//go:build linux

// status.go: the numbers behind a status page (php-fpm's pm.status_path): Snapshot, and the
// little bookkeeping it needs on the request path. Nothing here allocates per request; the
// current request's method and URI are copied only when a snapshot is taken.

package pyrunner

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Snapshot is the pool's state, in php-fpm's terms. A worker is one channel: a process, or
// one thread of a process with Options.Threads above 1.
type Snapshot struct {
	Mode Mode
	// Idle and Active count the workers waiting for a request and serving one, of every
	// generation (during a reload the old workers finishing their requests are Active).
	// Workers starting or exiting are in neither.
	Idle, Active int
	// Processes counts the live worker processes (retiring ones included), Starting those
	// being started.
	Processes, Starting int
	// MaxActive is the most workers ever active at once.
	MaxActive int
	// MaxChildrenReached counts the requests that found every worker busy with the pool at
	// its largest (Options.Workers processes, starting ones included), so they had to wait.
	MaxChildrenReached uint64
	// Waiting is the requests waiting for a worker now (in the queue, or sent ahead to a busy
	// worker), MaxWaiting the most ever, QueueSize the most allowed (Options.QueueSize).
	Waiting, MaxWaiting, QueueSize int
	// SlowRequests counts the requests that ran past Options.SlowTimeout.
	SlowRequests uint64
	// SoftTimeouts counts the requests interrupted at Options.SoftTimeout, HardTimeouts
	// those whose worker was killed at Options.Timeout.
	SoftTimeouts, HardTimeouts uint64
	// Draining counts the workers (threads) retired and finishing, Exits the processes
	// that ended, by cause (indexed by ExitCause).
	Draining int
	Exits    [NumExitCauses]uint64
	// Reloads and FailedReloads count the reloads that took effect and those that failed
	// (the old workers kept serving).
	Reloads, FailedReloads uint64
	// Served counts the requests that reached the app since the pool started.
	Served uint64
	// Threads is Options.Threads (Starting counts processes), MaxRSS Options.MaxRSS.
	Threads int
	MaxRSS  int64
	// MemoryPeak is the highest peak resident memory (VmHWM) of any worker process the pool
	// has read: at each Snapshot, of every live process.
	MemoryPeak int64
	// Workers has a row per idle or active worker, when Snapshot was asked for them.
	Workers []WorkerSnapshot
}

// WorkerSnapshot is one worker's row.
type WorkerSnapshot struct {
	PID     int
	State   string    // "Idle" or "Running" (php-fpm's words)
	Started time.Time // when its process started
	// Requests is how many requests it has served (with Options.TrackRequests; else its
	// process's count, all threads together).
	Requests uint64
	// Duration is how long the current request has run, or how long the last one ran for an
	// idle worker. Method, URI and ContentLength describe the current request; they are
	// empty for an idle worker (the pool keeps no copy of a finished request). All four need
	// Options.TrackRequests and RequestInfo.
	Duration      time.Duration
	Method, URI   string
	ContentLength int64
	RSS           int64 // its process's resident memory in bytes (/proc/PID/statm), read now
}

// RequestInfo is what a status page shows of a request; the caller sets Request.Info when
// Options.TrackRequests is on. The slices must stay unchanged until Do returns (a FastCGI
// request's params do): the pool keeps a reference while the request runs and copies the
// bytes only when a Snapshot is taken.
type RequestInfo struct {
	Method, URI   []byte
	ContentLength []byte // CONTENT_LENGTH as the web server sent it
}

// poolStats are the pool's counters for Snapshot. The plain fields are guarded by Pool.mu.
type poolStats struct {
	busy, maxBusy      int
	maxWaiting         int
	maxChildrenReached uint64
	slow               atomic.Uint64
	softTimeouts       atomic.Uint64
	hardTimeouts       atomic.Uint64
	memoryPeak         atomic.Int64
}

// notePeak raises the memory peak to n if it is higher, and returns the peak.
func (s *poolStats) notePeak(n int64) int64 {
	for {
		old := s.memoryPeak.Load()
		if n <= old || s.memoryPeak.CompareAndSwap(old, n) {
			return max(old, n)
		}
	}
}

// noteStateLocked keeps the count of busy workers of every generation, and its peak, as a
// worker changes state (setStateLocked).
func (s *poolStats) noteStateLocked(from, to workerState) {
	switch {
	case to == stateBusy:
		s.busy++
		s.maxBusy = max(s.maxBusy, s.busy)
	case from == stateBusy:
		s.busy--
	}
}

// noteWaitLocked counts a request that found no idle worker and joined the queue (acquire's
// slow path): the queue's peak, and whether the pool was already at its largest.
func (p *Pool) noteWaitLocked() {
	p.st.maxWaiting = max(p.st.maxWaiting, len(p.waiters)+p.ahead)
	if p.count[stateStarting]+p.count[stateIdle]+p.count[stateBusy] >= p.opts.Workers*p.opts.Threads {
		p.st.maxChildrenReached++
	}
}

// reqTrack is a worker's current request, for Snapshot. Only with Options.TrackRequests; its
// mutex is taken by the request's goroutine twice per request (begin, end), uncontended
// unless a snapshot is being taken.
type reqTrack struct {
	mu       sync.Mutex
	cur      *Request      // the request running; nil between requests
	start    time.Duration // when it started, on clock
	requests uint64
}

// clock is the monotonic clock of begin: time.Since(clock) reads one clock where time.Now
// reads two (about 35 ns against 70 on the 2-core VM).
var clock = time.Now()

// trackBegin records that req starts on w (its owner, as the request starts).
func (w *worker) trackBegin(req *Request) {
	now := time.Since(clock)
	w.track.mu.Lock()
	w.track.cur, w.track.start = req, now
	w.track.mu.Unlock()
	w.tracking = true
}

// trackEnd records that w's request is over or detached: from now on Snapshot no longer
// reads the request, which its caller may reuse.
func (w *worker) trackEnd() {
	w.tracking = false
	w.track.mu.Lock()
	w.track.cur = nil
	w.track.requests++
	w.track.mu.Unlock()
}

// Snapshot returns the pool's state; full adds a row per worker, with its process's RSS read
// from /proc now.
func (p *Pool) Snapshot(full bool) Snapshot {
	now := time.Now()
	p.mu.Lock()
	s := Snapshot{
		Mode:               p.opts.Mode,
		MaxActive:          p.st.maxBusy,
		MaxChildrenReached: p.st.maxChildrenReached,
		Waiting:            len(p.waiters) + p.ahead,
		MaxWaiting:         p.st.maxWaiting,
		QueueSize:          p.opts.QueueSize,
		SlowRequests:       p.st.slow.Load(),
		SoftTimeouts:       p.st.softTimeouts.Load(),
		HardTimeouts:       p.st.hardTimeouts.Load(),
		Exits:              p.ev.exits,
		Reloads:            p.ev.reloads,
		FailedReloads:      p.ev.failedReloads,
		Served:             p.ev.served,
		Threads:            p.opts.Threads,
		MaxRSS:             p.opts.MaxRSS,
	}
	var live []int
	var procs []*process
	for w := range p.workers {
		if w == w.p.slots[0] {
			if w.state == stateStarting {
				s.Starting++
			} else {
				s.Processes++
				live = append(live, w.p.pid)
			}
		}
		switch w.state {
		case stateIdle:
			s.Idle++
		case stateBusy:
			s.Active++
		case stateDraining:
			s.Draining++
			continue
		default:
			continue
		}
		if full && w == w.p.slots[0] {
			procs = append(procs, w.p)
		}
	}
	if full {
		slices.SortFunc(procs, func(a, b *process) int { return cmp.Compare(a.pid, b.pid) })
		for _, pr := range procs {
			for _, w := range pr.slots {
				if w.state == stateIdle || w.state == stateBusy {
					s.Workers = append(s.Workers, p.workerSnapshotLocked(w, now))
				}
			}
		}
	}
	p.mu.Unlock()
	peak := int64(0)
	for _, pid := range live {
		if n, err := peakResidentBytes(pid); err == nil {
			peak = max(peak, n)
		}
	}
	s.MemoryPeak = p.st.notePeak(peak)
	s.MaxActive = max(s.MaxActive, s.Active)
	s.MaxWaiting = max(s.MaxWaiting, s.Waiting)
	rss := map[int]int64{}
	for i := range s.Workers {
		ws := &s.Workers[i]
		n, ok := rss[ws.PID]
		if !ok {
			n, _ = residentBytes(ws.PID)
			rss[ws.PID] = n
		}
		ws.RSS = n
	}
	return s
}

// workerSnapshotLocked is w's row; w is idle or busy.
func (p *Pool) workerSnapshotLocked(w *worker, now time.Time) WorkerSnapshot {
	ws := WorkerSnapshot{PID: w.p.pid, State: "Idle", Started: w.p.started, Requests: uint64(w.p.served)}
	if w.state == stateBusy {
		ws.State = "Running"
	}
	if !p.opts.TrackRequests {
		return ws
	}
	t := &w.track
	t.mu.Lock()
	defer t.mu.Unlock()
	ws.Requests = t.requests
	switch {
	case t.cur != nil:
		ws.Duration = now.Sub(clock) - t.start
		info := &t.cur.Info
		ws.Method, ws.URI = string(info.Method), string(info.URI)
		ws.ContentLength, _ = strconv.ParseInt(string(info.ContentLength), 10, 64)
	case w.state == stateIdle && t.requests > 0 && w.idleSince.Sub(clock) > t.start:
		// The last request ended when the worker went idle.
		ws.Duration = w.idleSince.Sub(clock) - t.start
	}
	return ws
}

// PIDs returns the process ids of the live worker processes (not those still starting).
func (p *Pool) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pids []int
	for _, pr := range p.processesLocked() {
		if pr.slots[0].state != stateStarting {
			pids = append(pids, pr.pid)
		}
	}
	return pids
}
