// pool.go: the pool of workers: options, the worker table and its one supervisor goroutine
// (spawning per pool mode, replacement with crash-loop backoff, recycling, graceful reload),
// and shutdown. The request path (acquire, release) is in handout.go.

package pyrunner

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"syscall"
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

// Mode is how the pool sizes itself, in php-fpm's vocabulary.
type Mode uint8

const (
	// Static keeps Options.Workers workers running.
	Static Mode = iota
	// Dynamic starts Options.StartWorkers, keeps between MinSpare and MaxSpare idle workers,
	// and never runs more than Options.Workers.
	Dynamic
	// Ondemand runs no worker until a request comes, starts one per waiting request up to
	// Options.Workers, and stops a worker idle for longer than Options.IdleTimeout.
	Ondemand
)

func (m Mode) String() string {
	switch m {
	case Static:
		return "static"
	case Dynamic:
		return "dynamic"
	case Ondemand:
		return "ondemand"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode reads "static", "dynamic" or "ondemand".
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{Static, Dynamic, Ondemand} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("pool mode %q: want static, dynamic or ondemand", s)
}

// Options configure a Pool. Zero values take the defaults given per field.
type Options struct {
	// Python is the interpreter to run the workers with (default "python3" on PATH).
	Python string
	// App is "module:callable" or "module" (callable "application"), as gunicorn spells it.
	App string
	// Chdir is the workers' working directory, put first on sys.path.
	Chdir string
	// PythonPath lists more directories to put on sys.path, after Chdir.
	PythonPath []string
	// Mode sizes the pool (default Static).
	Mode Mode
	// Workers is the number of worker processes in Static mode, the most in the others
	// (default 1).
	Workers int
	// Threads is how many requests one process serves at once, each in a thread of its own
	// on a channel of its own (default 1). The pool counts the spare and busy capacity in
	// threads; it starts and stops whole processes.
	Threads int
	// StartWorkers is how many workers Dynamic mode starts with (default: MinSpare plus half
	// the gap to MaxSpare, as php-fpm).
	StartWorkers int
	// MinSpare and MaxSpare bound the idle workers in Dynamic mode (defaults 1 and
	// max(1, Workers/2)).
	MinSpare, MaxSpare int
	// IdleTimeout: in Ondemand mode a worker idle this long exits (default 10s).
	IdleTimeout time.Duration
	// MaxRequests recycles a worker after this many requests (0: never), plus a random
	// 0..MaxRequestsJitter per worker so that workers do not all restart at once.
	MaxRequests, MaxRequestsJitter int
	// MaxRSS recycles a worker whose resident memory is above this many bytes (0: no limit).
	// It is checked every second; a busy worker finishes its request first.
	MaxRSS int64
	// Timeout is the hard limit on one request (0: none): past it the worker's Python stack is
	// logged, the worker is killed and replaced, and Do returns an error wrapping ErrTimeout.
	Timeout time.Duration
	// SoftTimeout interrupts a request that has run this long (0: never): the app gets a
	// wsgi_fcgi.SoftTimeout exception in the request's thread, the client a 504 (or a cut
	// response), and the worker serves on once the app has unwound; Do returns an error
	// wrapping ErrTimeout.
	SoftTimeout time.Duration
	// CancelGrace is how long an app may take to unwind once its request is cancelled (the
	// web server gave up on it) or interrupted (SoftTimeout), before its worker is killed
	// and replaced, with its Python stack logged (default 5s).
	CancelGrace time.Duration
	// SlowTimeout logs the worker's Python stack once when a request has run this long,
	// without stopping it (0: never).
	SlowTimeout time.Duration
	// QueueSize bounds the requests waiting for a worker (default 1024).
	QueueSize int
	// QueueTimeout bounds how long a request waits for a worker (default 30s).
	QueueTimeout time.Duration
	// NoSendAhead keeps every request in the queue until a worker is idle, instead of sending
	// it ahead behind the request a busy worker is running (ahead.go).
	NoSendAhead bool
	// SendAheadDepth is how many requests may be sent ahead behind one worker's request
	// (default DefaultSendAheadDepth, at most MaxSendAheadDepth).
	SendAheadDepth int
	// NormalSched starts every Python process under the normal scheduling policy
	// (SCHED_OTHER), whatever policy the gateway has: set when the gateway has put itself
	// under SCHED_BATCH (cmd/wsgi-fcgi, sched.go), which children inherit.
	NormalSched bool
	// WorkerNice, when set, is the nice value every Python process is given as it starts
	// (setpriority(2)): set when the gateway runs at another (cmd/wsgi-fcgi, --priority),
	// which children inherit. Raising a nice value needs no privilege.
	WorkerNice *int
	// Preload imports the app once in a master process that forks the workers (copy-on-write
	// memory, gc.freeze(); a replacement is ready without an import).
	Preload bool
	// Debug makes the runner put the app's traceback in the body of its 500 (it is logged
	// either way): for development only, as it shows the app's internals to the client.
	Debug bool
	// StartTimeout bounds a worker's start, import included (default 60s).
	StartTimeout time.Duration
	// Env is the workers' environment (default: the gateway's own).
	Env []string
	// TrackRequests keeps each worker's current request (Request.Info) and its own request
	// count for Snapshot's rows: a few stores per request (status.go).
	TrackRequests bool
	// Logger receives the pool's and the workers' log lines (default: discarded).
	Logger hclog.Logger
}

func (o *Options) fill() {
	if o.Python == "" {
		o.Python = "python3"
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Threads <= 0 {
		o.Threads = 1
	}
	if o.Preload {
		o.Threads = min(o.Threads, MaxPreloadThreads)
	}
	if o.MinSpare <= 0 {
		o.MinSpare = 1
	}
	if o.MaxSpare <= 0 {
		o.MaxSpare = max(1, o.Workers/2)
	}
	o.MaxSpare = min(max(o.MaxSpare, o.MinSpare), o.Workers)
	o.MinSpare = min(o.MinSpare, o.MaxSpare)
	if o.StartWorkers <= 0 {
		o.StartWorkers = o.MinSpare + (o.MaxSpare-o.MinSpare)/2
	}
	o.StartWorkers = min(max(o.StartWorkers, o.MinSpare), o.Workers)
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.SendAheadDepth <= 0 {
		o.SendAheadDepth = DefaultSendAheadDepth
	}
	o.SendAheadDepth = min(o.SendAheadDepth, MaxSendAheadDepth)
	if o.QueueTimeout <= 0 {
		o.QueueTimeout = 30 * time.Second
	}
	if o.CancelGrace <= 0 {
		o.CancelGrace = 5 * time.Second
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
}

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

	st poolStats // Snapshot's counters (status.go)
}

// reloadState is a reload whose new workers are starting.
type reloadState struct {
	gen     int
	pending int // new workers not ready yet
	reply   chan error
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
	p.log.Info("workers ready", "workers", n, "threads", p.opts.Threads, "pm", p.opts.Mode, "max_workers", p.opts.Workers,
		"preload", p.opts.Preload, "app", p.opts.App, "python", p.opts.Python)
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
		w := &worker{id: pr.id, pool: p, p: pr, state: stateStarting}
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
	p.removeLocked(pr)
	p.closeIdleMastersLocked()
	lived := time.Since(pr.started).Round(time.Millisecond)
	switch {
	case p.closing:
	case pr.retiring:
		pr.log.Debug("worker exited", "reason", pr.retireReason, "lived", lived, "served", pr.served)
	case pr.killed:
		// Killed by the pool (timeout, protocol error): logged where it was decided.
	default:
		p.crashedLocked(pr, fmt.Errorf("exited on its own (%s) while %s", exitCause(pr.exitErr), prev))
	}
}

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
		args := []any{"error", cause, "deaths", p.deaths, "retry_in", p.backoff}
		var le *LoadError
		if errors.As(cause, &le) && le.Traceback != "" {
			args = append(args, "traceback", le.Traceback)
		}
		p.log.Error("workers are failing young: backing off", args...)
		p.deaths = 0
		return
	}
	p.backoff = 0
	p.deaths = 0
	pr.log.Warn("worker exited", "cause", cause, "lived", lived.Round(time.Millisecond), "served", pr.served)
}

// Crash-loop backoff: a process that dies within crashLoopAge of its start counts as a crash
// loop; the delay before the next spawn doubles from minBackoff up to maxBackoff.
const (
	crashLoopAge = 2 * time.Second
	minBackoff   = 100 * time.Millisecond
	maxBackoff   = 30 * time.Second
)

// exitCause describes how a process ended; a SIGKILL the pool did not send is most often the
// kernel's OOM killer, as gunicorn's arbiter says too.
func exitCause(err error) string {
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
		return err.Error() + " (killed from outside the gateway: out of memory?)"
	}
	return err.Error()
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
		pr.log.Info("worker over --max-rss: recycling it after its requests", "rss", n, "max_rss", p.opts.MaxRSS)
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
		return 0
	}
	if wait := time.Until(p.nextSpawn); wait > 0 {
		return wait
	}
	for ; active < want; active += t {
		p.spawn(p.newProcessLocked(p.gen))
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
	for _, w := range pr.slots {
		if w.state == stateIdle {
			p.removeIdleLocked(w)
			p.setStateLocked(w, stateDraining)
			w.retireIdle()
		}
	}
}

// Reload starts a new generation of workers (the app imported afresh), puts them to work as
// they become ready, then retires the old ones, each after the request it holds. If a new
// worker cannot load the app, the new generation is dropped, the old workers keep serving,
// and Reload returns the error (a *LoadError when the import failed).
func (p *Pool) Reload(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case p.reloadCh <- reply:
	case <-p.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pool) startReload(reply chan error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reload != nil {
		reply <- ErrReloading
		return
	}
	active := p.count[stateStarting] + p.count[stateIdle] + p.count[stateBusy]
	n := max(1, (active+p.opts.Threads-1)/p.opts.Threads)
	if p.opts.Mode == Static {
		n = p.opts.Workers
	}
	gen := p.gen + 1
	for w := range p.workers {
		gen = max(gen, w.p.gen+1) // past any aborted reload's stragglers
	}
	p.reload = &reloadState{gen: gen, pending: n, reply: reply}
	p.log.Info("reloading: starting new workers", "workers", n)
	for range n {
		p.spawn(p.newProcessLocked(gen))
	}
}

func (p *Pool) abortReloadLocked(err error) {
	rl := p.reload
	p.reload = nil
	for _, pr := range p.processesLocked() {
		if pr.gen == rl.gen {
			p.retireLocked(pr, "reload failed")
		}
	}
	p.closeIdleMastersLocked()
	args := []any{"error", err}
	var le *LoadError
	if errors.As(err, &le) && le.Traceback != "" {
		args = append(args, "traceback", le.Traceback)
	}
	p.log.Error("reload failed: the old workers keep serving", args...)
	rl.reply <- err
}

func (p *Pool) commitReloadLocked() {
	rl := p.reload
	p.reload = nil
	p.setGenLocked(rl.gen)
	old := 0
	for _, pr := range p.processesLocked() {
		if pr.gen < rl.gen {
			p.retireLocked(pr, "reload")
			old++
		}
	}
	p.closeIdleMastersLocked() // an old preload master with no worker left exits now
	p.log.Info("reloaded: old workers finish their requests and exit", "old_workers", old)
	rl.reply <- nil
}

// Stats is a snapshot of the pool.
type Stats struct {
	Workers  int // live worker processes, Draining ones included, Starting ones not
	Starting int // processes being started
	Idle     int // idle threads (one per process without --threads)
	Busy     int // threads serving a request
	Waiting  int // requests waiting for a worker, in the queue or sent ahead to a busy one
}

// Stats returns a snapshot of the pool's state.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Idle: len(p.idle), Waiting: len(p.waiters) + p.ahead}
	for w := range p.workers {
		if w.state == stateBusy {
			s.Busy++
		}
		if w != w.p.slots[0] {
			continue
		}
		if w.state == stateStarting {
			s.Starting++
		} else {
			s.Workers++
		}
	}
	return s
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
