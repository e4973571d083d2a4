//go:build linux

package pyrunner

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// record is one relayed log record, as the JSON logger wrote it.
type record map[string]any

func (r record) str(k string) string { s, _ := r[k].(string); return s }

// recordSink collects the JSON records a logger writes, and says when one arrives.
type recordSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	arrived chan struct{}
}

func newRecordSink() *recordSink { return &recordSink{arrived: make(chan struct{}, 100)} }

func (s *recordSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (s *recordSink) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: s, JSONFormat: true, Level: hclog.Trace})
}

func (s *recordSink) records(t *testing.T) []record {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []record
	for _, line := range strings.Split(strings.TrimSpace(s.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		out = append(out, r)
	}
	return out
}

const pyTraceback = `Traceback (most recent call last):
  File "/srv/app.py", line 12, in application
    return handler(environ)
           ^^^^^^^^^^^^^^^^
  File "/srv/app.py", line 7, in handler
    raise ValueError("boom")
ValueError: boom`

const pyChained = `Traceback (most recent call last):
  File "/srv/app.py", line 3, in load
    return cache[key]
KeyError: 'k'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/app.py", line 5, in load
    raise LookupError(key)
LookupError: k`

const pyGroup = `  + Exception Group Traceback (most recent call last):
  |   File "/srv/app.py", line 2, in <module>
  |     raise ExceptionGroup("eg", [ValueError(1), TypeError(2)])
  | ExceptionGroup: eg (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | ValueError: 1
    +---------------- 2 ----------------
    | TypeError: 2
    +------------------------------------`

// want is one expected record: its level, its message, and keys it must have.
type want struct {
	level, msg string
	keys       map[string]string
}

func TestRelayGroupsTracebacks(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  []want
	}{
		{"plain lines, one record each, empty ones dropped",
			"hello\n\nworld\n",
			[]want{{"info", "hello", map[string]string{"stream": "stderr"}}, {"info", "world", nil}}},
		{"a traceback is one error record",
			pyTraceback + "\n",
			[]want{{"error", "ValueError: boom", map[string]string{"traceback": pyTraceback, "stream": "stderr"}}}},
		{"a traceback between lines",
			"before\n" + pyTraceback + "\nafter\n",
			[]want{{"error", "before", map[string]string{"error": "ValueError: boom", "traceback": pyTraceback}}, {"info", "after", nil}}},
		{"a logging call's message heads its traceback",
			"ERROR:root:Exception on /x [GET]\n" + pyTraceback + "\n",
			[]want{{"error", "ERROR:root:Exception on /x [GET]", map[string]string{"error": "ValueError: boom", "traceback": pyTraceback}}}},
		{"chained tracebacks are one record",
			pyChained + "\nnext\n",
			[]want{{"error", "LookupError: k", map[string]string{"traceback": pyChained}}, {"info", "next", nil}}},
		{"two tracebacks are two records",
			pyTraceback + "\n" + pyTraceback + "\n",
			[]want{{"error", "ValueError: boom", map[string]string{"traceback": pyTraceback}}, {"error", "ValueError: boom", map[string]string{"traceback": pyTraceback}}}},
		{"an exception group",
			pyGroup + "\nafter\n",
			[]want{{"error", "Python traceback", map[string]string{"traceback": pyGroup}}, {"info", "after", nil}}},
		{"a traceback cut short by the end of the stream",
			"Traceback (most recent call last):\n  File \"/srv/app.py\", line 1, in <module>",
			[]want{{"error", "Python traceback", map[string]string{"traceback": "Traceback (most recent call last):\n  File \"/srv/app.py\", line 1, in <module>"}}}},
		{"the runner's JSON records keep their level and keys",
			`{"@level":"warn","@message":"parent process changed: exiting","ppid":1}` + "\n" + pyTraceback + "\n",
			[]want{{"warn", "parent process changed: exiting", nil}, {"error", "ValueError: boom", nil}}},
		{"CRLF line endings",
			"dos\r\n",
			[]want{{"info", "dos", nil}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sink := newRecordSink()
			newRelayer(sink.logger(), strings.NewReader(tc.input), "stderr", time.Hour).run()
			got := sink.records(t)
			if len(got) != len(tc.want) {
				t.Fatalf("%d records, want %d: %v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				r := got[i]
				if r.str("@level") != w.level || r.str("@message") != w.msg {
					t.Errorf("record %d: %s %q, want %s %q", i, r.str("@level"), r.str("@message"), w.level, w.msg)
				}
				for k, v := range w.keys {
					if r.str(k) != v {
						t.Errorf("record %d: %s = %q, want %q", i, k, r.str(k), v)
					}
				}
			}
		})
	}
}

// A line longer than maxRelayLine is cut, says so, and the lines after it are relayed.
func TestRelayCutsLongLines(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	sink := newRecordSink()
	done := make(chan struct{})
	go func() {
		defer close(done)
		newRelayer(sink.logger(), pr, "stdout", time.Hour).run()
	}()
	long := strings.Repeat("x", 2<<20)
	if _, err := io.WriteString(pw, long+"\nnormal line\n"); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	<-done
	pr.Close()
	got := sink.records(t)
	if len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
	wantCut := strings.Repeat("x", maxRelayLine) + " … (1048576 bytes cut)"
	if m := got[0].str("@message"); m != wantCut {
		t.Errorf("long line relayed as %d bytes ending %q, want %d ending %q", len(m), m[max(0, len(m)-30):], len(wantCut), wantCut[len(wantCut)-30:])
	}
	if m := got[1].str("@message"); m != "normal line" {
		t.Errorf("the line after it: %q, want %q", m, "normal line")
	}
}

// A traceback whose process stops writing mid-way is logged once nothing more has come for
// the relayer's wait, without waiting for the stream's end.
func TestRelayFlushesAHeldTraceback(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	sink := newRecordSink()
	done := make(chan struct{})
	go func() {
		defer close(done)
		newRelayer(sink.logger(), pr, "stderr", 20*time.Millisecond).run()
	}()
	io.WriteString(pw, pyTraceback+"\n")
	select {
	case <-sink.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the traceback was held while the stream stayed open")
	}
	io.WriteString(pw, "later\n")
	pw.Close()
	<-done
	pr.Close()
	got := sink.records(t)
	if len(got) != 2 || got[0].str("@message") != "ValueError: boom" || got[1].str("@message") != "later" {
		t.Fatalf("records %v, want the traceback then \"later\"", got)
	}
}
