//go:build linux

// pool.go: the pool of workers: the worker table and its one supervisor goroutine (spawning
// per pool mode, replacement, recycling), and shutdown. Its options are in options.go, the
// crash-loop back-off in backoff.go, reload in reload.go, the request path in dispatch.go
// and owner.go.

package pyrunner

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

//go:embed runner.py
var runnerSource []byte

// Errors returned by Do before a worker was involved, and by Reload.
var (
	// ErrQueueFull: every worker is busy and the wait queue is at its limit.
	ErrQueueFull = errors.New("pyrunner: all workers busy and the queue is full")
	// ErrQueueTimeout: no worker became free within Options.QueueTimeout.
	ErrQueueTimeout = errors.New("pyrunner: timed out waiting for a free worker")
	// ErrClosed: the pool is shutting down.
	ErrClosed = errors.New("pyrunner: pool closed")
	// ErrReloading: a reload was asked for while another one was still starting its workers.
	ErrReloading = errors.New("pyrunner: a reload is already in progress")
)

// Pool runs Python worker processes, each serving Options.Threads requests at a time (one
// per channel: a worker), and hands requests to idle workers. Create it with New, then Start it.
//
// The worker table (p.workers) gains and loses entries only in the supervisor goroutine (and
// in Start, before the supervisor runs); a worker's state changes only through
// setStateLocked, under mu. The request path takes mu for a few instructions to pop or push
// the idle stack, and never waits on the supervisor.
type Pool struct {
	opts   Options
	log    hclog.Logger
	source *os.File // runner.py: an unlinked temp file every runner reads (runnerBootstrap)

	mu      sync.Mutex
	workers map[*worker]struct{} // every worker not yet Exited
	idle    []*worker            // LIFO: the most recently used worker is the warmest
	waiters []*call              // FIFO of requests waiting for a worker
	// Busy workers a request may be sent ahead to, oldest request first, and the moving
	// average of request times (dispatch.go).
	aheadable []*worker
	aheadAvg  time.Duration
	ahead     int            // requests waiting behind another in an inbox: they count against QueueSize
	count     [numStates]int // workers (threads) per state, of the current generation
	gen       int            // the generation new workers belong to; a reload bumps it
	nextID    int
	python    readyInfo // the interpreter, as the first process to start said in READY
	closing   bool

	masterMu sync.Mutex          // guards masters; taken after mu when both are
	masters  map[int]*masterSlot // preload masters by generation

	started  chan startResult // spawn goroutines → supervisor
	exited   chan *process    // processes that ended → supervisor
	wake     chan struct{}    // the request path asks the supervisor to look again
	reloadCh chan chan error  // Reload → supervisor
	stop     chan struct{}
	wg       sync.WaitGroup // the supervisor and the spawn goroutines

	// Supervisor-only state.
	backoff   time.Duration // current crash-loop delay before a spawn (0: none)
	nextSpawn time.Time     // no spawn before this while backing off
	deaths    int           // young deaths since the last backoff log line
	reload    *reloadState
	// replaced lists the pids of processes that died or are being recycled, whose
	// replacements have not started: the next spawns name them in their start's log line.
	replaced []int

	st poolStats   // Snapshot's counters (status.go)
	ev eventCounts // exits, reloads (counters.go); guarded by mu
}

// startResult is a spawn goroutine's report.
type startResult struct {
	p   *process
	err error
}

// New prepares a pool: it writes the runner to an unlinked temp file. No process starts yet.
func New(opts Options) (*Pool, error) {
	opts.fill()
	if opts.App == "" {
		return nil, errors.New("pyrunner: no app given")
	}
	source, err := unlinkedCopy(runnerSource)
	if err != nil {
		return nil, fmt.Errorf("runner source: %w", err)
	}
	return &Pool{
		opts:     opts,
		log:      opts.Logger,
		source:   source,
		workers:  make(map[*worker]struct{}),
		masters:  make(map[int]*masterSlot),
		started:  make(chan startResult),
		exited:   make(chan *process),
		wake:     make(chan struct{}, 1),
		reloadCh: make(chan chan error),
		stop:     make(chan struct{}),
	}, nil
}

// unlinkedCopy returns a descriptor of a file holding data that has no name on disk: it is
// gone once the last process holding it closes it or exits.
func unlinkedCopy(data []byte) (*os.File, error) {
	f, err := os.CreateTemp("", "wsgi-fcgi-runner-*.py")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f, nil
}

// initialProcesses is how many processes Start starts: Ondemand starts one, to prove the app
// imports before anything listens, and lets it idle out.
func (p *Pool) initialProcesses() int {
	switch p.opts.Mode {
	case Dynamic:
		return p.opts.StartWorkers
	case Ondemand:
		return 1
	}
	return p.opts.Workers
}

// Start starts the first workers and returns when all are ready, or with the first error (a
// *LoadError when the app cannot be imported). On error nothing is left running.
func (p *Pool) Start(ctx context.Context) error {
	n := p.initialProcesses()
	p.mu.Lock()
	ps := make([]*process, n)
	for i := range ps {
		ps[i] = p.newProcessLocked(p.gen)
	}
	p.mu.Unlock()
	for _, pr := range ps {
		p.spawn(pr)
	}
	var first error
	for range n {
		var r startResult
		select {
		case r = <-p.started:
		case <-ctx.Done():
			if first == nil {
				first = ctx.Err()
			}
			r = <-p.started
		}
		if r.err != nil {
			if first == nil {
				first = r.err
			}
			p.mu.Lock()
			p.removeLocked(r.p)
			p.mu.Unlock()
			continue
		}
		p.onStarted(r)
	}
	if first != nil {
		p.Close()
		return first
	}
	p.wg.Add(1)
	go p.supervise()
	p.mu.Lock()
	py := p.python
	p.mu.Unlock()
	p.log.Info("workers ready", "workers", n, "threads", p.opts.Threads, "pm", p.opts.Mode, "max_workers", p.opts.Workers,
		"preload", p.opts.Preload, "app", p.opts.App, "python", p.opts.Python,
		"python_version", py.version, "implementation", py.implementation)
	return nil
}

// newProcessLocked adds a process's workers, in state Starting, to the table; spawn starts it.
func (p *Pool) newProcessLocked(gen int) *process {
	p.nextID++
	pr := &process{id: p.nextID, gen: gen, done: make(chan struct{})}
	if p.opts.MaxRequests > 0 {
		pr.maxRequests = p.opts.MaxRequests
		if p.opts.MaxRequestsJitter > 0 {
			pr.maxRequests += rand.IntN(p.opts.MaxRequestsJitter + 1)
		}
	}
	pr.slots = make([]*worker, p.opts.Threads)
	for i := range pr.slots {
		w := &worker{id: pr.id, ch: i, pool: p, p: pr, state: stateStarting}
		pr.slots[i] = w
		p.workers[w] = struct{}{}
		if gen == p.gen {
			p.count[stateStarting]++
		}
	}
	return pr
}

// removeLocked takes an ended process's workers out of the table.
func (p *Pool) removeLocked(pr *process) {
	for _, w := range pr.slots {
		p.removeIdleLocked(w)
		p.unmarkAheadableLocked(w)
		p.setStateLocked(w, stateExited)
		delete(p.workers, w)
	}
}

// spawn starts pr in a goroutine that reports the result to the supervisor, then waits for
// the process to end and reports that too.
func (p *Pool) spawn(pr *process) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := p.startProcess(pr)
		select {
		case p.started <- startResult{pr, err}:
		case <-p.stop:
			if err == nil {
				pr.kill()
				<-pr.done
			}
			return
		}
		if err != nil {
			return
		}
		<-pr.done
		select {
		case p.exited <- pr:
		case <-p.stop:
		}
	}()
}

// setStateLocked is the only place a worker's state changes. It keeps the per-state counts
// (of the current generation) that sizing decisions read.
func (p *Pool) setStateLocked(w *worker, s workerState) {
	if w.state == s {
		return
	}
	p.st.noteStateLocked(w.state, s)
	if w.p.gen == p.gen {
		p.count[w.state]--
		p.count[s]++
	}
	w.state = s
	if s == stateIdle {
		w.idleSince = time.Now()
	}
}

// setGenLocked makes gen the current generation and recounts.
func (p *Pool) setGenLocked(gen int) {
	p.gen = gen
	p.count = [numStates]int{}
	for w := range p.workers {
		if w.p.gen == gen {
			p.count[w.state]++
		}
	}
}

// processesLocked lists the processes in the table.
func (p *Pool) processesLocked() []*process {
	var out []*process
	for w := range p.workers {
		if w == w.p.slots[0] {
			out = append(out, w.p)
		}
	}
	return out
}

// supervise owns the worker table: it adds workers as they start, removes them as they exit,
// and sizes the pool, until the pool closes.
func (p *Pool) supervise() {
	defer p.wg.Done()
	var tick <-chan time.Time
	if p.opts.Mode != Static || p.opts.MaxRSS > 0 {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	backoffTimer := time.NewTimer(time.Hour)
	backoffTimer.Stop()
	defer backoffTimer.Stop()
	for {
		select {
		case <-p.stop:
			return
		case r := <-p.started:
			p.onStarted(r)
		case pr := <-p.exited:
			p.onExited(pr)
		case <-p.wake:
		case <-backoffTimer.C:
		case now := <-tick:
			p.onTick(now)
		case reply := <-p.reloadCh:
			p.startReload(reply)
		}
		if wait := p.manage(); wait > 0 {
			backoffTimer.Reset(wait)
		}
	}
}

// onStarted records a spawn's result.
func (p *Pool) onStarted(r startResult) {
	pr := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.err != nil {
		p.removeLocked(pr)
		if !p.closing {
			p.ev.exits[ExitStartFailed]++
		}
		if rl := p.reload; rl != nil && pr.gen == rl.gen {
			p.abortReloadLocked(r.err)
			return
		}
		p.closeIdleMastersLocked()
		if p.closing || pr.gen != p.gen {
			return
		}
		p.crashedLocked(pr, r.err)
		return
	}
	if p.python == (readyInfo{}) {
		p.python = pr.python
		p.firstReadyLocked()
	}
	pr.log.Info("worker ready", "python", p.opts.Python, "python_version", pr.python.version,
		"startup", time.Since(pr.started).Round(time.Millisecond).String())
	if p.closing {
		for _, w := range pr.slots {
			p.setStateLocked(w, stateDraining)
			w.retireIdle()
		}
		return
	}
	if rl := p.reload; rl != nil && pr.gen == rl.gen {
		rl.pending--
		if rl.pending == 0 {
			p.commitReloadLocked()
		}
	} else if pr.gen > p.gen {
		// A process of a reload that was aborted.
		p.retireLocked(pr, "reload failed")
	}
	for _, w := range pr.slots {
		if !p.afterLocked(w) {
			w.retireIdle()
		}
		w.wake()
	}
}

// onExited removes a process that ended, and tells a crash from a requested exit.
func (p *Pool) onExited(pr *process) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := pr.slots[0].state
	p.noteExitLocked(pr)
	p.removeLocked(pr)
	p.closeIdleMastersLocked()
	lived := time.Since(pr.started).Round(time.Millisecond).String()
	switch {
	case p.closing:
		pr.log.Debug("worker exited", "cause", ExitShutdown, "lived", lived, "served", pr.served)
	case pr.retiring:
		pr.log.Info("worker exited", "cause", retireCause(pr.retireReason), "reason", pr.retireReason, "lived", lived, "served", pr.served)
	case pr.killed:
		// Why it was killed is logged, with the request, where it was decided.
		pr.log.Info("worker exited", "cause", ExitKilled, "reason", pr.killReason, "lived", lived, "served", pr.served)
		p.noteReplacedLocked(pr)
	default:
		p.noteReplacedLocked(pr)
		p.crashedLocked(pr, fmt.Errorf("exited on its own (%s) while %s", exitCause(pr.exitErr, pr.sigkilled.Load()), prev))
	}
}

// noteReplacedLocked records that pr, of the current generation, is to be replaced, for the
// log line of its replacement's start.
func (p *Pool) noteReplacedLocked(pr *process) {
	if pr.gen == p.gen && pr.pid != 0 && len(p.replaced) < p.opts.Workers {
		p.replaced = append(p.replaced, pr.pid)
	}
}

// idleProcessLocked returns the current generation's process whose threads have all been
// idle the longest, and since when; nil when none is wholly idle.
func (p *Pool) idleProcessLocked() (*process, time.Time) {
	var best *process
	var since time.Time
	for _, pr := range p.processesLocked() {
		if pr.gen != p.gen || pr.retiring {
			continue
		}
		latest := time.Time{}
		idle := true
		for _, w := range pr.slots {
			if w.state != stateIdle {
				idle = false
				break
			}
			if w.idleSince.After(latest) {
				latest = w.idleSince
			}
		}
		if idle && (best == nil || latest.Before(since)) {
			best, since = pr, latest
		}
	}
	return best, since
}

// onTick runs once a second: idle timeouts, spare trimming and the RSS limit.
func (p *Pool) onTick(now time.Time) {
	var rss []*process
	p.mu.Lock()
	switch p.opts.Mode {
	case Ondemand:
		for {
			pr, since := p.idleProcessLocked()
			if pr == nil || now.Sub(since) < p.opts.IdleTimeout {
				break
			}
			p.retireLocked(pr, "idle timeout")
		}
	case Dynamic:
		// php-fpm trims one surplus idle worker per second.
		if p.count[stateIdle] > p.opts.MaxSpare*p.opts.Threads {
			if pr, _ := p.idleProcessLocked(); pr != nil {
				p.retireLocked(pr, "more idle workers than --pm-max-spare")
			}
		}
	}
	if p.opts.MaxRSS > 0 {
		for _, pr := range p.processesLocked() {
			if pr.slots[0].state != stateStarting && !pr.retiring {
				rss = append(rss, pr)
			}
		}
	}
	p.mu.Unlock()
	for _, pr := range rss {
		n, err := residentBytes(pr.pid)
		if err != nil || n <= p.opts.MaxRSS {
			continue
		}
		pr.log.Info("worker over --max-rss: recycling it after its requests", "rss_bytes", n, "max_rss_bytes", p.opts.MaxRSS)
		p.mu.Lock()
		p.retireLocked(pr, "max rss")
		p.mu.Unlock()
	}
}

// manage starts the processes the mode wants. It returns how long to wait when a crash-loop
// backoff holds the spawns back.
func (p *Pool) manage() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return 0
	}
	t := p.opts.Threads
	active := p.count[stateStarting] + p.count[stateIdle] + p.count[stateBusy] // in threads
	want := p.opts.Workers * t
	switch p.opts.Mode {
	case Dynamic:
		want = min(want, p.count[stateBusy]+p.opts.MinSpare*t+len(p.waiters))
	case Ondemand:
		want = min(want, p.count[stateBusy]+p.count[stateIdle]+len(p.waiters))
	}
	if active >= want {
		if p.opts.Mode != Static {
			p.replaced = p.replaced[:0] // the pool has shrunk instead
		}
		return 0
	}
	if wait := time.Until(p.nextSpawn); wait > 0 {
		return wait
	}
	for ; active < want; active += t {
		pr := p.newProcessLocked(p.gen)
		if len(p.replaced) > 0 {
			pr.replaces, p.replaced = p.replaced[0], p.replaced[1:]
		}
		p.spawn(pr)
	}
	return 0
}

// retireLocked asks pr to exit once it holds no request: its idle threads' channels close at
// once, the busy ones' at release. The runner exits when all its channels have closed.
func (p *Pool) retireLocked(pr *process, reason string) {
	if pr.retiring {
		return
	}
	pr.retiring, pr.retireReason = true, reason
	if c := retireCause(reason); c == ExitMaxRequests || c == ExitMaxRSS {
		p.noteReplacedLocked(pr)
	}
	for _, w := range pr.slots {
		if w.state == stateIdle {
			p.removeIdleLocked(w)
			p.setStateLocked(w, stateDraining)
			w.retireIdle()
		}
	}
}

// Shutdown stops the pool: waiting requests fail with ErrClosed, idle workers are asked to
// exit (their channel closes), busy ones finish their request first. When ctx ends first the
// rest are killed. Safe to call more than once.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.closing {
		p.closing = true
		close(p.stop)
		for _, c := range p.waiters {
			c.queued = false
			c.finish(ErrClosed)
		}
		p.waiters = nil
		for _, w := range p.idle {
			p.setStateLocked(w, stateDraining)
			w.retireIdle()
		}
		p.idle = nil
		if rl := p.reload; rl != nil {
			p.reload = nil
			rl.reply <- ErrClosed
		}
	}
	var all []*process
	for _, pr := range p.processesLocked() {
		if pr.slots[0].state != stateStarting {
			all = append(all, pr)
		}
	}
	p.mu.Unlock()

	var err error
	for _, pr := range all {
		select {
		case <-pr.done:
		case <-ctx.Done():
			err = ctx.Err()
			pr.kill()
			<-pr.done
		}
	}
	p.wg.Wait() // spawn goroutines kill the processes they were starting
	p.closeMasters()
	p.source.Close()
	return err
}

// Close kills every worker at once.
func (p *Pool) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return p.Shutdown(ctx)
}
