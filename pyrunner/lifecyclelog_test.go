//go:build linux

package pyrunner

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// withJSONLog gives opts a JSON logger (at info, as the gateway's default) writing to the
// returned sink.
func withJSONLog(opts *Options) *recordSink {
	sink := newRecordSink()
	opts.Logger = hclog.New(&hclog.LoggerOptions{Output: sink, JSONFormat: true, Level: hclog.Info})
	return sink
}

// findRecord returns the first record with message msg whose keys have the values in keys.
func findRecord(rs []record, msg string, keys map[string]any) record {
	for _, r := range rs {
		if r.str("@message") != msg {
			continue
		}
		ok := true
		for k, v := range keys {
			if fmt.Sprint(r[k]) != fmt.Sprint(v) {
				ok = false
			}
		}
		if ok {
			return r
		}
	}
	return nil
}

// Each worker's start, readiness, exit (with its cause) and replacement is a line at info
// (a crash at warn or error) with the worker's pid; serving requests logs nothing.
func TestLifecycleLogLines(t *testing.T) {
	cases := []struct {
		name      string
		mode      string
		configure func(*Options)
		path      string
		// The exit line: its level and keys.
		exitMsg   string
		exitLevel string
		exitKeys  map[string]any
	}{
		{"max requests", "echo", func(o *Options) { o.MaxRequests = 1 }, "/",
			"worker exited", "info", map[string]any{"cause": "max_requests", "reason": "max requests", "served": 1}},
		{"timeout", "sleep", func(o *Options) { o.Timeout = 200 * time.Millisecond }, "/5s",
			"worker exited", "info", map[string]any{"cause": "killed", "reason": "request past --timeout"}},
		{"crash", "die", func(*Options) {}, "/",
			"workers are failing young: backing off", "error", map[string]any{"cause": "crash"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := fakeOptions(t, tc.mode, 1)
			tc.configure(&opts)
			sink := withJSONLog(&opts)
			p := startPool(t, opts)
			old := p.PIDs()[0]
			started := findRecord(sink.records(t), "worker started: importing the app", map[string]any{"pid": old})
			if started == nil || started.str("@level") != "info" {
				t.Errorf("no start line at info for pid %d: %v", old, sink.records(t))
			}
			ready := findRecord(sink.records(t), "worker ready", map[string]any{"pid": old, "python_version": "fake"})
			if ready == nil || ready.str("@level") != "info" || ready.str("python") != opts.Python {
				t.Errorf("no ready line at info naming the interpreter for pid %d: %v", old, sink.records(t))
			} else if _, err := time.ParseDuration(ready.str("startup")); err != nil {
				t.Errorf("ready line's startup %v is not a duration: %v", ready["startup"], err)
			}

			p.Do(context.Background(), pathRequest(tc.path), &recorder{})
			var exit, replacement record
			waitFor(t, 10*time.Second, "the exit and the replacement's lines", func() bool {
				rs := sink.records(t)
				keys := map[string]any{"pid": old}
				for k, v := range tc.exitKeys {
					keys[k] = v
				}
				exit = findRecord(rs, tc.exitMsg, keys)
				replacement = findRecord(rs, "worker started: importing the app", map[string]any{"replaces": old})
				return exit != nil && replacement != nil
			})
			if exit.str("@level") != tc.exitLevel {
				t.Errorf("exit line at %s, want %s: %v", exit.str("@level"), tc.exitLevel, exit)
			}
			if lived, ok := exit["lived"]; ok {
				if _, err := time.ParseDuration(fmt.Sprint(lived)); err != nil {
					t.Errorf("lived %v is not a duration: %v", lived, err)
				}
			}
			if pid, _ := replacement["pid"].(float64); pid == 0 || int(pid) == old {
				t.Errorf("replacement's pid %v, want a new one", replacement["pid"])
			}
		})
	}
}

// A static pool under normal load logs nothing per request at info.
func TestStaticPoolQuietPerRequest(t *testing.T) {
	opts := fakeOptions(t, "echo", 2)
	sink := withJSONLog(&opts)
	p := startPool(t, opts)
	waitFor(t, 5*time.Second, "the workers' own start output", func() bool {
		n := 0
		for _, r := range sink.records(t) {
			if r.str("@message") == "fake worker ready" {
				n++
			}
		}
		return n == 2
	})
	before := len(sink.records(t))
	for range 50 {
		if err := p.Do(context.Background(), simpleRequest(), &recorder{}); err != nil {
			t.Fatal(err)
		}
	}
	if rs := sink.records(t); len(rs) != before {
		t.Errorf("50 requests logged %d lines: %v", len(rs)-before, rs[before:])
	}
}

// Enums and durations are logged by name and as duration strings, never as numbers.
func TestLoggedEnumsAreNames(t *testing.T) {
	for _, v := range []any{Static, Ondemand, ExitMaxRSS} {
		b, err := v.(interface{ MarshalText() ([]byte, error) }).MarshalText()
		if err != nil || string(b) != fmt.Sprint(v) {
			t.Errorf("%T %v marshals as %q, %v", v, v, b, err)
		}
	}
}

// An ondemand worker that idles out says so at info, and nothing names it as replaced.
func TestIdleExitLogged(t *testing.T) {
	opts := fakeOptions(t, "echo", 2)
	opts.Mode = Ondemand
	opts.IdleTimeout = 100 * time.Millisecond
	sink := withJSONLog(&opts)
	p := startPool(t, opts)
	old := p.PIDs()[0]
	var exit record
	waitFor(t, 5*time.Second, "the idle worker's exit line", func() bool {
		exit = findRecord(sink.records(t), "worker exited", map[string]any{"pid": old})
		return exit != nil
	})
	if exit.str("@level") != "info" || exit.str("cause") != "idle" || exit.str("reason") != "idle timeout" {
		t.Errorf("exit line %v, want cause idle at info", exit)
	}
	if err := p.Do(context.Background(), simpleRequest(), &recorder{}); err != nil {
		t.Fatal(err)
	}
	if r := findRecord(sink.records(t), "worker started: importing the app", map[string]any{"replaces": old}); r != nil {
		t.Errorf("a worker started on demand is said to replace the one that idled out: %v", r)
	}
}
