// pool.go: the pool of workers: start, hand-out (LIFO) with a bounded wait queue, replacement
// of dead workers with backoff, and shutdown.

package pyrunner

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

//go:embed runner.py
var runnerSource []byte

// Errors returned by Do before a worker was involved.
var (
	// ErrQueueFull: every worker is busy and the wait queue is at its limit.
	ErrQueueFull = errors.New("pyrunner: all workers busy and the queue is full")
	// ErrQueueTimeout: no worker became free within Options.QueueTimeout.
	ErrQueueTimeout = errors.New("pyrunner: timed out waiting for a free worker")
	// ErrClosed: the pool is shutting down.
	ErrClosed = errors.New("pyrunner: pool closed")
)

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
	// Workers is the number of worker processes (default 1).
	Workers int
	// QueueSize bounds the requests waiting for a worker (default 1024).
	QueueSize int
	// QueueTimeout bounds how long a request waits for a worker (default 30s).
	QueueTimeout time.Duration
	// StartTimeout bounds a worker's start, import included (default 60s).
	StartTimeout time.Duration
	// Env is the workers' environment (default: the gateway's own).
	Env []string
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
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.QueueTimeout <= 0 {
		o.QueueTimeout = 30 * time.Second
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

// Pool runs Options.Workers Python workers, each serving one request at a time, and hands
// requests to idle ones. Create it with New, then Start it.
type Pool struct {
	opts   Options
	log    hclog.Logger
	dir    string // private temp dir holding runner.py
	script string

	mu      sync.Mutex
	idle    []*worker      // LIFO: the most recently used worker is the warmest
	waiters []chan *worker // FIFO of requests waiting for a worker
	live    map[*worker]struct{}
	nextID  int
	closing bool

	exited chan *worker // workers whose process ended, for the supervisor
	stop   chan struct{}
	wg     sync.WaitGroup // the supervisor and respawn goroutines
}

// New prepares a pool: it writes the runner to a private temp dir. No process starts yet.
func New(opts Options) (*Pool, error) {
	opts.fill()
	if opts.App == "" {
		return nil, errors.New("pyrunner: no app given")
	}
	dir, err := os.MkdirTemp("", "wsgi-fcgi-")
	if err != nil {
		return nil, fmt.Errorf("runner dir: %w", err)
	}
	script := filepath.Join(dir, "wsgi_fcgi_runner.py")
	if err := os.WriteFile(script, runnerSource, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("write runner: %w", err)
	}
	return &Pool{
		opts:   opts,
		log:    opts.Logger,
		dir:    dir,
		script: script,
		live:   make(map[*worker]struct{}),
		exited: make(chan *worker, 16),
		stop:   make(chan struct{}),
	}, nil
}

// Start starts every worker and returns when all are ready, or with the first error (a
// *LoadError when the app cannot be imported). On error nothing is left running.
func (p *Pool) Start(ctx context.Context) error {
	type result struct {
		w   *worker
		err error
	}
	results := make(chan result, p.opts.Workers)
	for i := 0; i < p.opts.Workers; i++ {
		id := p.newID()
		go func() {
			w, err := p.startWorker(id)
			results <- result{w, err}
		}()
	}
	var first error
	var ready []*worker
	for i := 0; i < p.opts.Workers; i++ {
		var r result
		select {
		case r = <-results:
		case <-ctx.Done():
			r = <-results
			if r.err == nil {
				r.err = ctx.Err()
				ready = append(ready, r.w)
			}
		}
		if r.err != nil {
			if first == nil {
				first = r.err
			}
			continue
		}
		ready = append(ready, r.w)
	}
	if first != nil {
		for _, w := range ready {
			w.kill()
			<-w.done
		}
		os.RemoveAll(p.dir)
		return first
	}
	p.mu.Lock()
	for _, w := range ready {
		p.live[w] = struct{}{}
		p.idle = append(p.idle, w)
		p.watch(w)
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go p.supervise()
	p.log.Info("workers ready", "workers", len(ready), "app", p.opts.App, "python", p.opts.Python)
	return nil
}

func (p *Pool) newID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	return p.nextID
}

// watch reports w to the supervisor when its process ends.
func (p *Pool) watch(w *worker) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		<-w.done
		select {
		case p.exited <- w:
		case <-p.stop:
		}
	}()
}

// supervise replaces workers that exit, with a backoff when they die young (a crash loop).
func (p *Pool) supervise() {
	defer p.wg.Done()
	backoff := time.Duration(0)
	for {
		select {
		case <-p.stop:
			return
		case w := <-p.exited:
			p.mu.Lock()
			delete(p.live, w)
			p.removeIdleLocked(w)
			closing := p.closing
			p.mu.Unlock()
			if closing {
				continue
			}
			lived := time.Since(w.started)
			switch {
			case lived < 2*time.Second:
				backoff = min(max(2*backoff, 100*time.Millisecond), 30*time.Second)
			default:
				backoff = 0
			}
			w.log.Warn("worker exited", "cause", exitCause(w.exitErr), "lived", lived.Round(time.Millisecond), "served", w.served, "respawn_in", backoff)
			p.wg.Add(1)
			go p.respawn(backoff)
		}
	}
}

// respawn starts one replacement worker after delay, retrying with a growing delay until it
// is up or the pool closes.
func (p *Pool) respawn(delay time.Duration) {
	defer p.wg.Done()
	for {
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-p.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		w, err := p.startWorker(p.newID())
		if err == nil {
			p.mu.Lock()
			if p.closing {
				p.mu.Unlock()
				w.kill()
				return
			}
			p.live[w] = struct{}{}
			p.watch(w)
			p.mu.Unlock()
			p.release(w)
			return
		}
		delay = min(max(2*delay, time.Second), 30*time.Second)
		var le *LoadError
		if errors.As(err, &le) && le.Traceback != "" {
			p.log.Error("worker start failed", "error", err, "retry_in", delay, "traceback", le.Traceback)
		} else {
			p.log.Error("worker start failed", "error", err, "retry_in", delay)
		}
	}
}

func exitCause(err error) string {
	if err == nil {
		return "exited 0"
	}
	return err.Error()
}

// acquire hands out an idle worker, or waits for one in the bounded queue.
func (p *Pool) acquire(ctx context.Context) (*worker, error) {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w, nil
	}
	if len(p.waiters) >= p.opts.QueueSize {
		p.mu.Unlock()
		return nil, ErrQueueFull
	}
	ch := make(chan *worker, 1)
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()

	timer := time.NewTimer(p.opts.QueueTimeout)
	defer timer.Stop()
	var err error
	select {
	case w := <-ch:
		if w == nil {
			return nil, ErrClosed
		}
		return w, nil
	case <-timer.C:
		err = ErrQueueTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	for i, c := range p.waiters {
		if c == ch {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return nil, err
		}
	}
	p.mu.Unlock()
	// A worker was handed to us as we gave up: pass it on.
	if w := <-ch; w != nil {
		p.release(w)
	}
	return nil, err
}

// release returns a healthy worker: to the longest waiter, else to the idle stack.
func (p *Pool) release(w *worker) {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		w.stop()
		return
	}
	if len(p.waiters) > 0 {
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		ch <- w
		return
	}
	p.idle = append(p.idle, w)
	p.mu.Unlock()
}

// discard kills a worker that can no longer be trusted; the supervisor replaces it.
func (p *Pool) discard(w *worker) {
	w.kill()
}

func (p *Pool) removeIdleLocked(w *worker) {
	for i, x := range p.idle {
		if x == w {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return
		}
	}
}

// Stats is a snapshot of the pool.
type Stats struct {
	Workers int // live worker processes
	Idle    int // of which idle
	Waiting int // requests waiting for a worker
}

// Stats returns a snapshot of the pool's state.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Workers: len(p.live), Idle: len(p.idle), Waiting: len(p.waiters)}
}

// PIDs returns the process ids of the live workers.
func (p *Pool) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := make([]int, 0, len(p.live))
	for w := range p.live {
		pids = append(pids, w.pid)
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
		for _, ch := range p.waiters {
			ch <- nil
		}
		p.waiters = nil
		for _, w := range p.idle {
			w.stop()
		}
		p.idle = nil
	}
	all := make([]*worker, 0, len(p.live))
	for w := range p.live {
		all = append(all, w)
	}
	p.mu.Unlock()

	var err error
	for _, w := range all {
		select {
		case <-w.done:
		case <-ctx.Done():
			err = ctx.Err()
			w.kill()
			<-w.done
		}
	}
	p.wg.Wait()
	os.RemoveAll(p.dir)
	return err
}

// Close kills every worker at once.
func (p *Pool) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return p.Shutdown(ctx)
}
