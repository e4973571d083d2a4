//go:build linux

// notify.go: systemd's Type=notify (sd_notify(3), through go-systemd's daemon package).
// READY=1 once the workers are up and the listeners serve; RELOADING=1 and READY=1 around a
// reload, with STATUS= saying when it failed; STOPPING=1 at the drain; and, while running,
// STATUS= with the workers and the requests per second, which `systemctl status` shows.

package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"

	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// statusInterval is how often STATUS= is refreshed while the gateway runs.
const statusInterval = 5 * time.Second

// notifySocketVar is the variable systemd sets for a Type=notify service: where to send.
const notifySocketVar = "NOTIFY_SOCKET"

// notifier tells the service manager what the gateway is doing. Without NOTIFY_SOCKET (not
// started by systemd as Type=notify) it sends nothing, and a nil notifier does nothing. Its
// methods are safe to call from several goroutines.
type notifier struct {
	send func(state string) error // nil: no service manager
	log  hclog.Logger

	mu        sync.Mutex
	reloading bool   // between RELOADING=1 and READY=1: no periodic STATUS=
	note      string // a failed reload, kept in STATUS= until a reload succeeds
	failed    bool   // a send failed: logged once
}

// newNotifier returns the notifier of this process: one that sends to NOTIFY_SOCKET when
// getenv has it.
func newNotifier(getenv func(string) string, log hclog.Logger) *notifier {
	n := &notifier{log: log}
	if getenv(notifySocketVar) != "" {
		n.send = func(state string) error {
			_, err := daemon.SdNotify(false, state)
			return err
		}
	}
	return n
}

// withoutNotifySocket is environ less NOTIFY_SOCKET: the workers' environment. Only the
// gateway speaks to systemd; an app that would (a library calling sd_notify) must not say
// READY=1 for it.
func withoutNotifySocket(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, notifySocketVar+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// notifyLocked sends the lines as one message. A failure is logged once: systemd may have
// gone away, and the gateway serves on.
func (n *notifier) notifyLocked(lines ...string) {
	if n.send == nil {
		return
	}
	if err := n.send(strings.Join(lines, "\n")); err != nil && !n.failed {
		n.failed = true
		n.log.Warn("cannot notify systemd (NOTIFY_SOCKET)", "error", err)
	}
}

// ready says the gateway serves: at start, with status as STATUS=.
func (n *notifier) ready(status string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notifyLocked("READY=1", "STATUS="+status)
}

// reloadStarted says a reload has begun: RELOADING=1 with the monotonic clock's time, as
// systemd wants it for Type=notify-reload.
func (n *notifier) reloadStarted() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reloading = true
	n.notifyLocked("RELOADING=1", strings.TrimSuffix(daemon.SdNotifyMonotonicUsec(), "\n"), "STATUS=reloading the app")
}

// reloadEnded says a reload is over: READY=1 either way. After a failure STATUS= says so,
// and keeps saying it in the periodic status until a reload succeeds.
func (n *notifier) reloadEnded(err error) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reloading = false
	if err != nil {
		n.note = "reload failed, the old workers serve: " + oneLine(err.Error())
		n.notifyLocked("READY=1", "STATUS="+n.note)
		return
	}
	n.note = ""
	n.notifyLocked("READY=1", "STATUS=reloaded the app")
}

// stopping says the gateway drains and stops.
func (n *notifier) stopping() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notifyLocked("STOPPING=1", "STATUS=stopping: finishing running requests")
}

// status refreshes STATUS=, unless a reload is under way; a failed reload's note follows.
func (n *notifier) status(s string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.reloading {
		return
	}
	if n.note != "" {
		s += "; " + n.note
	}
	n.notifyLocked("STATUS=" + s)
}

// poolSample is what STATUS= says of the pool, at a moment.
type poolSample struct {
	at        time.Time
	processes int    // live worker processes
	busy      int    // workers (threads) serving a request
	served    uint64 // requests that reached the app since start
}

// samplePool reads the pool's counters.
func samplePool(pool *pyrunner.Pool) poolSample {
	s := pool.Snapshot(false)
	return poolSample{at: time.Now(), processes: s.Processes, busy: s.Active, served: s.Served}
}

// statusText is STATUS= for cur: the workers, and the requests per second since prev.
func statusText(prev, cur poolSample) string {
	rate := 0.0
	if d := cur.at.Sub(prev.at).Seconds(); d > 0 && cur.served >= prev.served {
		rate = float64(cur.served-prev.served) / d
	}
	workers := "workers"
	if cur.processes == 1 {
		workers = "worker"
	}
	return fmt.Sprintf("%d %s, %d busy, %.1f requests/s", cur.processes, workers, cur.busy, rate)
}

// runStatus refreshes STATUS= at each tick until ctx ends, from sample, starting from
// first. The caller owns it: it starts it in a goroutine and cancels ctx to stop it.
func (n *notifier) runStatus(ctx context.Context, ticks <-chan time.Time, first poolSample, sample func() poolSample) {
	prev := first
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			cur := sample()
			n.status(statusText(prev, cur))
			prev = cur
		}
	}
}

// startNotifyStatus says READY=1 with the pool's state, then refreshes STATUS= every
// statusInterval until the returned stop is called (or ctx ends); stop waits for it. Without
// a service manager it does nothing.
func startNotifyStatus(ctx context.Context, sd *notifier, pool *pyrunner.Pool) (stop func()) {
	if !sd.enabled() {
		return func() {}
	}
	first := samplePool(pool)
	sd.ready(statusText(first, first))
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	ticker := time.NewTicker(statusInterval)
	go func() {
		defer close(done)
		defer ticker.Stop()
		sd.runStatus(ctx, ticker.C, first, func() poolSample { return samplePool(pool) })
	}()
	return func() {
		cancel()
		<-done
	}
}

// enabled reports whether a service manager listens.
func (n *notifier) enabled() bool { return n != nil && n.send != nil }

// oneLine is s with its line breaks made spaces: a STATUS= value is one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
