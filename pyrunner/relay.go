//go:build linux

// relay.go: a worker's standard output and error, relayed to the log. Each line is one
// record at level info, except that:
//
//   - a Python traceback ("Traceback (most recent call last):", its indented lines, the
//     exception line, and the tracebacks chained to it) is one record at level error, with the
//     line just before it when that line came in the same write (a logging call's message);
//   - a line the runner writes as an hclog-style JSON object is logged at its own level with
//     its own keys;
//   - a line longer than maxRelayLine is cut there, with a note of how much was cut, and the
//     lines after it are relayed as usual;
//   - an empty line is not logged.

package pyrunner

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// maxRelayLine bounds one relayed line, and one traceback record: the rest of a longer line is
// cut ("… (N bytes cut)"); a longer traceback goes on in a second record.
const maxRelayLine = 1 << 20

// tracebackWait is how long a traceback's record waits for more of it when nothing more has
// arrived: the tracebacks chained to it, or the rest of one the process is still writing.
const tracebackWait = 200 * time.Millisecond

// The lines of Python's traceback format that the grouping knows.
const (
	tracebackStart = "Traceback (most recent call last):"
	chainContext   = "During handling of the above exception, another exception occurred:"
	chainCause     = "The above exception was the direct cause of the following exception:"
)

// relay copies one output stream of a worker to log until it ends, then closes it and marks
// pipes done. It is the stream's only reader.
func relay(log hclog.Logger, pipes *sync.WaitGroup, r io.ReadCloser, stream string) {
	defer pipes.Done()
	defer r.Close()
	newRelayer(log, r, stream, tracebackWait).run()
}

// relayer is the state of one stream's relay; its goroutine alone uses it.
type relayer struct {
	log    hclog.Logger
	stream string
	wait   time.Duration
	br     *bufio.Reader
	// deadline is the read deadline of the source, when it has one (a pipe does).
	deadline interface{ SetReadDeadline(time.Time) error }
	armed    bool // a read deadline is set

	line []byte // the line being read
	cut  int    // bytes cut from it

	head string // a line held back because more had arrived with it: it may head a traceback
	tb   traceback
}

func newRelayer(log hclog.Logger, r io.Reader, stream string, wait time.Duration) *relayer {
	rl := &relayer{log: log, stream: stream, wait: wait, br: bufio.NewReaderSize(r, 64<<10)}
	rl.deadline, _ = r.(interface{ SetReadDeadline(time.Time) error })
	return rl
}

// run relays lines until the stream ends or fails.
func (rl *relayer) run() {
	for {
		rl.armDeadline()
		line, err := rl.next()
		switch {
		case err == nil:
			rl.handle(line)
		case errors.Is(err, os.ErrDeadlineExceeded):
			rl.flush() // nothing more came: what is held is complete
		default:
			if len(line) > 0 {
				rl.handle(line) // the last line, without its newline
			}
			rl.flush()
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				rl.log.Warn("worker output not relayed", "stream", rl.stream, "error", err)
			}
			return
		}
	}
}

// armDeadline bounds the next read while something is held back, so that a held record is
// not kept waiting for output that may never come.
func (rl *relayer) armDeadline() {
	if rl.deadline == nil {
		return
	}
	if rl.head != "" || rl.tb.active() {
		rl.deadline.SetReadDeadline(time.Now().Add(rl.wait))
		rl.armed = true
	} else if rl.armed {
		rl.deadline.SetReadDeadline(time.Time{})
		rl.armed = false
	}
}

// next returns the next line without its line ending, cut to maxRelayLine with a note of the
// bytes cut. On an error it returns the part of a line read before it (EOF: the last line
// had no newline); after a deadline the part stays, and the next call goes on with the line.
func (rl *relayer) next() (string, error) {
	for {
		frag, err := rl.br.ReadSlice('\n')
		end := err == nil
		if end {
			frag = frag[:len(frag)-1]
		}
		room := maxRelayLine - len(rl.line)
		if len(frag) > room {
			rl.cut += len(frag) - room
			frag = frag[:room]
		}
		rl.line = append(rl.line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if !end && errors.Is(err, os.ErrDeadlineExceeded) {
			return "", err
		}
		line := strings.TrimSuffix(string(rl.line), "\r")
		if rl.cut > 0 {
			line += fmt.Sprintf(" … (%d bytes cut)", rl.cut)
		}
		rl.line, rl.cut = rl.line[:0], 0
		return line, err
	}
}

// handle takes one complete line.
func (rl *relayer) handle(line string) {
	if rl.tb.active() {
		if rl.tb.add(line) {
			if rl.tb.size >= maxRelayLine {
				rl.emitTraceback()
				rl.tb.continued()
			}
			return
		}
		rl.emitTraceback() // line is not part of it
	}
	head := rl.head
	rl.head = ""
	if isTracebackStart(line) {
		rl.tb.start(line)
		rl.tb.head = head
		return
	}
	if head != "" {
		rl.plain(head)
	}
	if line == "" {
		return
	}
	if line[0] == '{' && relayJSON(rl.log, []byte(line)) {
		return // the runner's own record: complete in itself
	}
	if rl.br.Buffered() > 0 {
		rl.head = line // more came with it: it may be a logging call's message for a traceback
		return
	}
	rl.plain(line)
}

// flush logs whatever is held back.
func (rl *relayer) flush() {
	if rl.head != "" {
		rl.plain(rl.head)
		rl.head = ""
	}
	if rl.tb.active() {
		rl.emitTraceback()
	}
}

// plain logs one line that is not part of a traceback.
func (rl *relayer) plain(line string) {
	rl.log.Info(line, "stream", rl.stream)
}

// emitTraceback logs the traceback held as one record at level error, and forgets it.
func (rl *relayer) emitTraceback() {
	t := &rl.tb
	msg, args := t.exception, []any{"stream", rl.stream}
	if msg == "" {
		msg = "Python traceback"
	}
	if t.head != "" {
		msg = t.head
		if t.exception != "" {
			args = append(args, "error", t.exception)
		}
	}
	args = append(args, "traceback", strings.Join(t.lines, "\n"))
	rl.log.Error(msg, args...)
	*t = traceback{}
}

// traceback is a Python traceback being gathered, with the tracebacks chained to it.
type traceback struct {
	lines     []string
	size      int
	head      string // the line before it that came with it, if any
	exception string // the exception line (the last one, when chained)
	// state: inBody after a "Traceback" line; afterException after the exception line, when
	// only a blank line or a chaining line continues it; inChain after a chaining line, when
	// a blank line or the next "Traceback" line does.
	state    tbState
	indented bool // it started indented (an exception group's): it ends at an unindented line
	blanks   int  // blank lines held at its end: part of it only if it goes on
}

type tbState uint8

const (
	tbNone tbState = iota
	tbBody
	tbAfterException
	tbChain
)

func (t *traceback) active() bool { return t.state != tbNone }

func (t *traceback) start(line string) {
	*t = traceback{state: tbBody, indented: line[0] == ' ' || line[0] == '\t'}
	t.append(line)
}

// continued starts the second record of a traceback too long for one.
func (t *traceback) continued() {
	t.state = tbBody
	t.append("(traceback continued)")
}

func (t *traceback) append(line string) {
	for ; t.blanks > 0; t.blanks-- {
		t.lines = append(t.lines, "")
	}
	t.lines = append(t.lines, line)
	t.size += len(line) + 1
}

// add takes the next line; false when the line is not part of the traceback (which then ends
// before it).
func (t *traceback) add(line string) bool {
	indented := line != "" && (line[0] == ' ' || line[0] == '\t')
	switch {
	case line == "":
		if t.state == tbBody && t.indented {
			return false
		}
		t.blanks++ // kept only if the traceback goes on
		return true
	case t.indented:
		if !indented {
			return false
		}
		t.append(line)
		return true
	}
	switch t.state {
	case tbBody:
		if indented || isTracebackStart(line) {
			t.append(line)
			return true
		}
		t.exception = line
		t.state = tbAfterException
		t.append(line)
		return true
	case tbAfterException:
		if t.blanks > 0 && (line == chainContext || line == chainCause) {
			t.state = tbChain
			t.append(line)
			return true
		}
	case tbChain:
		if t.blanks > 0 && line == tracebackStart {
			t.state = tbBody
			t.append(line)
			return true
		}
	}
	return false
}

// isTracebackStart reports whether line opens a Python traceback (an exception group's too).
func isTracebackStart(line string) bool {
	return strings.HasSuffix(line, tracebackStart) &&
		(line == tracebackStart || strings.HasSuffix(strings.TrimLeft(line, " +|"), "Exception Group "+tracebackStart))
}

// relayJSON logs a line the runner wrote as an hclog-style JSON object at its own level with
// its own keys; false when the line is not one.
func relayJSON(log hclog.Logger, line []byte) bool {
	var m map[string]any
	if json.Unmarshal(line, &m) != nil {
		return false
	}
	msg, ok := m["@message"].(string)
	if !ok {
		return false
	}
	level := hclog.Info
	if s, ok := m["@level"].(string); ok {
		level = hclog.LevelFromString(s)
		if level == hclog.NoLevel {
			level = hclog.Info
		}
	}
	args := make([]any, 0, 2*len(m))
	for k, v := range m {
		if strings.HasPrefix(k, "@") {
			continue
		}
		args = append(args, k, v)
	}
	log.Log(level, msg, args...)
	return true
}
