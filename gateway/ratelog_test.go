package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fakeClock is a clock the test moves: AfterFunc's functions run in advance, in the test's
// goroutine, when their time comes.
type fakeClock struct {
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) AfterFunc(d time.Duration, f func()) {
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), f})
}

// advance moves the clock by d, running the timers due on the way.
func (c *fakeClock) advance(d time.Duration) {
	end := c.now.Add(d)
	for {
		i := -1
		for j, t := range c.timers {
			if !t.at.After(end) && (i < 0 || t.at.Before(c.timers[i].at)) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		t := c.timers[i]
		c.timers = append(c.timers[:i], c.timers[i+1:]...)
		c.now = t.at
		t.f()
	}
	c.now = end
}

func TestRefusalLogRate(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	l := newRefusalLog(hclog.New(&hclog.LoggerOptions{Output: &buf, JSONFormat: true}), clk, refusalNames, refusalMessages)
	lines := func() []map[string]any {
		var out []map[string]any
		for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if s == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(s), &m); err != nil {
				t.Fatalf("%v: %q", err, s)
			}
			out = append(out, m)
		}
		buf.Reset()
		return out
	}
	type want struct{ msg, cause, id string }
	check := func(step string, want []want) {
		t.Helper()
		got := lines()
		if len(got) != len(want) {
			t.Fatalf("%s: %d lines, want %d: %v", step, len(got), len(want), got)
		}
		for i, w := range want {
			if got[i]["@message"] != w.msg || got[i]["cause"] != w.cause || got[i]["request_id"] != w.id {
				t.Errorf("%s: line %d: %v, want %q cause %s request_id %s", step, i, got[i], w.msg, w.cause, w.id)
			}
		}
	}
	full, timeout := refusalMessages[refusedQueueFull], refusalMessages[refusedQueueTimeout]

	// A burst: the first at once; each cause has its own line.
	for i := range 1524 {
		l.note(refusedQueueFull, "id"+string(rune('a'+i%26)), "/x", "")
		clk.advance(100 * time.Microsecond)
	}
	l.note(refusedQueueTimeout, "t1", "/y", "")
	check("burst", []want{{full, "queue_full", "ida"}, {timeout, "queue_timeout", "t1"}})

	// The window ends: one line for the 1523 others, naming the last and 1522 more.
	clk.advance(time.Second)
	check("end of the first window", []want{{full + " (and 1522 more in the last 1s)", "queue_full", "idp"}}) // 1523 % 26 is p

	// Refusals go on: one line a second.
	for range 3 {
		for range 10 {
			l.note(refusedQueueFull, "id", "/x", "")
			clk.advance(50 * time.Millisecond)
		}
		clk.advance(500 * time.Millisecond)
		check("sustained", []want{{full + " (and 9 more in the last 1s)", "queue_full", "id"}})
	}

	// A window with one refusal names it alone; then a quiet window closes the cause.
	l.note(refusedQueueFull, "lone", "/x", "")
	clk.advance(time.Second)
	check("one in a window", []want{{full, "queue_full", "lone"}})
	clk.advance(time.Second)
	check("quiet", nil)
	if len(clk.timers) != 0 {
		t.Errorf("%d timers still set after a quiet window", len(clk.timers))
	}

	// After the quiet window the next refusal is logged at once.
	l.note(refusedQueueFull, "again", "/x", "")
	check("after the quiet", []want{{full, "queue_full", "again"}})
}
