// ratelog.go: the log lines of refusals: the gateway's own 503s, and the requests the
// FastCGI server turns away itself (serverrefusal.go). Under overload every request may be
// refused; a line each would bury everything else in the log, and cost as much as the
// requests. So each cause is logged at most once per refusalWindow: the first refusal of a
// quiet spell at once, then one line a window that names the window's last refusal and says
// how many more there were, until a window passes with none.

package gateway

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// refusalWindow is the least time between two log lines of one refusal cause.
const refusalWindow = time.Second

// refusalMessages are the log messages of the refusal causes (refusedQueueFull...).
var refusalMessages = []string{
	"request refused: every worker busy and the queue full (--queue-size)",
	"request refused: no worker free within --queue-timeout",
	"request refused: the gateway is shutting down",
}

// clock is what refusalLog reads the time from and schedules with; tests give a fake one.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func())
}

type realClock struct{}

func (realClock) Now() time.Time                      { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) { time.AfterFunc(d, f) }

// refusalLog logs refusals, at most one line per cause per refusalWindow. The timer it
// starts for a window runs once, when the window ends, and starts the next only if that
// window had refusals: it stops by itself when the refusals stop.
type refusalLog struct {
	log   hclog.Logger
	clock clock
	// names and messages of the causes, by index: the cause key and the line's message.
	names, messages []string

	mu     sync.Mutex
	causes []refusalCount
}

// refusalCount is one cause's window: open while its timer runs.
type refusalCount struct {
	open  bool
	since time.Time // when the window opened
	more  int       // refusals in it not logged yet
	// The last of them, which the window's line names.
	lastID, lastURI, lastDetail string
}

// newRefusalLog logs the causes named by names (the "cause" key of each line), with the
// messages of the same index.
func newRefusalLog(log hclog.Logger, c clock, names, messages []string) *refusalLog {
	return &refusalLog{log: log, clock: c, names: names, messages: messages, causes: make([]refusalCount, len(names))}
}

// note logs, or counts, one refusal; detail, when not "", is its error's text.
func (l *refusalLog) note(cause int, requestID, uri, detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &l.causes[cause]
	if c.open {
		c.more++
		c.lastID, c.lastURI, c.lastDetail = requestID, uri, detail
		return
	}
	l.logLocked(cause, "", requestID, uri, detail)
	l.openLocked(cause)
}

// logLocked writes one line: a refusal, with suffix saying what else the line stands for.
func (l *refusalLog) logLocked(cause int, suffix, requestID, uri, detail string) {
	args := []any{"cause", l.names[cause]}
	if requestID != "" {
		args = append(args, "request_id", requestID)
	}
	if uri != "" {
		args = append(args, "uri", uri)
	}
	if detail != "" {
		args = append(args, "error", detail)
	}
	l.log.Warn(l.messages[cause]+suffix, args...)
}

func (l *refusalLog) openLocked(cause int) {
	c := &l.causes[cause]
	*c = refusalCount{open: true, since: l.clock.Now()}
	l.clock.AfterFunc(refusalWindow, func() { l.endWindow(cause) })
}

// endWindow runs when a cause's window ends: it logs the refusals the window counted, as
// one line naming the last of them, and opens the next window if there were any.
func (l *refusalLog) endWindow(cause int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &l.causes[cause]
	if c.more == 0 {
		*c = refusalCount{}
		return
	}
	suffix := ""
	if c.more > 1 {
		in := l.clock.Now().Sub(c.since).Round(100 * time.Millisecond)
		suffix = fmt.Sprintf(" (and %d more in the last %v)", c.more-1, in)
	}
	l.logLocked(cause, suffix, c.lastID, c.lastURI, c.lastDetail)
	l.openLocked(cause)
}
