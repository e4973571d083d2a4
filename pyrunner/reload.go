//go:build linux

// reload.go: a graceful reload (SIGHUP): a new generation of workers, put to work as they
// become ready, then the old ones retired; a failed import keeps the old ones serving.

package pyrunner

import (
	"context"
	"errors"
)

// reloadState is a reload whose new workers are starting.
type reloadState struct {
	gen     int
	pending int // new workers not ready yet
	reply   chan error
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
	p.ev.failedReloads++
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
	p.ev.reloads++
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
