//go:build integration

// Load: clients in goroutines, each sending requests in a loop, and a tally of what came back.

package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// tally counts requests by outcome and keeps the latencies of the correct ones.
type tally struct {
	mu      sync.Mutex
	sent    int64
	ok      int64
	kinds   map[string]int64
	example map[string]string
	lat     []time.Duration
}

func newTally() *tally {
	return &tally{kinds: map[string]int64{}, example: map[string]string{}}
}

// add counts one request: kind "" is a correct answer, else what went wrong (detail: the
// first example of a kind, for the error message).
func (t *tally) add(kind string, elapsed time.Duration, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent++
	if kind == "" {
		t.ok++
		t.lat = append(t.lat, elapsed)
		return
	}
	t.kinds[kind]++
	if _, seen := t.example[kind]; !seen {
		t.example[kind] = detail
	}
}

func (t *tally) count() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent
}

func (t *tally) failed() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent - t.ok
}

func (t *tally) of(kind string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.kinds[kind]
}

// what lists the failures: "502 ×3, cut ×1".
func (t *tally) what() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var parts []string
	for k, n := range t.kinds {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// examples lists the first failure of each kind.
func (t *tally) examples() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var parts []string
	for k, e := range t.example {
		parts = append(parts, fmt.Sprintf("%s: %s", k, e))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// quantile of the correct answers' latencies (q in [0, 1]).
func (t *tally) quantile(q float64) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lat) == 0 {
		return 0
	}
	l := slices.Clone(t.lat)
	slices.Sort(l)
	return l[min(len(l)-1, int(q*float64(len(l))))]
}

// quantileAbove is quantile over the latencies above floor only.
func (t *tally) quantileAbove(q float64, floor time.Duration) time.Duration {
	t.mu.Lock()
	var l []time.Duration
	for _, d := range t.lat {
		if d > floor {
			l = append(l, d)
		}
	}
	t.mu.Unlock()
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return l[min(len(l)-1, int(q*float64(len(l))))]
}

// row is the tally as a table row.
func (t *tally) row(name string, peakRSS int64, took time.Duration, note string) row {
	sent, failed := t.count(), t.failed()
	return row{name: name, sent: sent, ok: sent - failed, failed: failed, what: t.what(),
		p99: t.quantile(0.99), peakRSS: peakRSS, took: took, note: note}
}

// wantNoFailure fails the test if any request failed.
func (t *tally) wantNoFailure(tt *testing.T, what string) {
	tt.Helper()
	if n := t.failed(); n > 0 {
		tt.Errorf("%s: %d of %d requests failed (%s); first of each: %s", what, n, t.count(), t.what(), t.examples())
	}
}

// wantAtLeast fails the test if fewer than n requests were sent: a scenario that did not
// load the gateway proves nothing.
func (t *tally) wantAtLeast(tt *testing.T, n int64) {
	tt.Helper()
	if t.count() < n {
		tt.Errorf("only %d requests sent, want at least %d for a meaningful figure", t.count(), n)
	}
}

// waitSent waits until n requests were sent, or timeout.
func (t *tally) waitSent(n int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for t.count() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// load runs step(i) in a loop in each of n goroutines until stopped.
type load struct {
	clients []*client // closed by stop
	stopc   chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

func goLoad(n int, step func(i int)) *load {
	l := &load{stopc: make(chan struct{})}
	for i := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stopc:
					return
				default:
				}
				step(i)
			}
		}()
	}
	return l
}

// stop ends the load, waits for the requests in flight and closes the load's connections.
func (l *load) stop() {
	l.once.Do(func() { close(l.stopc) })
	l.wg.Wait()
	for _, c := range l.clients {
		c.close()
	}
}

// helloLoad is n clients sending GET path?query, each answer checked to be "VERSION PID"
// with check(version) true; it counts into tl.
func helloLoad(g *gw, tl *tally, n int, path, query string, check func(version string) bool) *load {
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = newClient(g.network, g.address)
	}
	l := goLoad(n, func(i int) {
		r := clients[i].do(get(path, query), 30*time.Second)
		kind := r.kind(200)
		if kind == "" {
			if v, _, ok := hello(r); !ok || !check(v) {
				kind = "wrong body"
			}
		}
		tl.add(kind, r.elapsed, fmt.Sprintf("%d %v %q", r.status, r.err, truncate(r.body)))
	})
	l.clients = clients
	return l
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

func anyVersion(string) bool { return true }
