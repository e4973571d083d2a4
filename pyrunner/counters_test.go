//go:build linux

package pyrunner

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRetireCause(t *testing.T) {
	cases := []struct {
		reason string
		want   ExitCause
	}{
		{"max requests", ExitMaxRequests},
		{"max rss", ExitMaxRSS},
		{"reload", ExitReload},
		{"reload failed", ExitReload},
		{"idle timeout", ExitIdle},
		{"more idle workers than --pm-max-spare", ExitIdle},
	}
	for _, tc := range cases {
		if got := retireCause(tc.reason); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.reason, got, tc.want)
		}
	}
	for c := range NumExitCauses {
		if s := c.String(); s == "unknown" || strings.ContainsAny(s, " -") {
			t.Errorf("ExitCause(%d) is %q: want a metric label value", c, s)
		}
	}
}

// TestTimeoutCountedWithRequestID: a request killed at Options.Timeout is counted as a hard
// timeout and its worker's exit as killed; the log line carries the request's ID; Do says
// when a worker started a request.
func TestTimeoutCountedWithRequestID(t *testing.T) {
	opts := fakeOptions(t, "sleep", 1)
	opts.Timeout = 300 * time.Millisecond
	lb := withLog(&opts)
	p := startPool(t, opts)

	req := pathRequest("/0s")
	before := time.Now()
	if err := p.Do(context.Background(), req, &recorder{}); err != nil {
		t.Fatal(err)
	}
	if req.Started.Before(before) || time.Since(req.Started) > 5*time.Second || req.WorkerPID == 0 {
		t.Errorf("Started %v (Do called at %v), WorkerPID %d", req.Started, before, req.WorkerPID)
	}

	req = pathRequest("/5s")
	req.ID = []byte("req-7")
	if err := p.Do(context.Background(), req, &recorder{}); err == nil {
		t.Fatal("the request did not time out")
	}
	if !strings.Contains(lb.String(), "request_id=req-7") {
		t.Errorf("the timeout's log line lacks the request id:\n%s", lb.String())
	}
	waitFor(t, 5*time.Second, "the killed worker counted", func() bool {
		s := p.Snapshot(false)
		return s.HardTimeouts == 1 && s.Exits[ExitKilled] == 1 && s.Exits[ExitCrash] == 0
	})
}

// TestCrashCountedWithRequestID: a worker that dies holding a request is counted as a crash,
// and the line about it names the request.
func TestCrashCountedWithRequestID(t *testing.T) {
	opts := fakeOptions(t, "die", 1)
	lb := withLog(&opts)
	p := startPool(t, opts)
	req := simpleRequest()
	req.ID = []byte("req-8")
	if err := p.Do(context.Background(), req, &recorder{}); err == nil {
		t.Fatal("the worker did not die")
	}
	if !strings.Contains(lb.String(), "worker lost while running a request") || !strings.Contains(lb.String(), "request_id=req-8") {
		t.Errorf("no line names the request the worker died with:\n%s", lb.String())
	}
	waitFor(t, 5*time.Second, "the crash counted", func() bool {
		s := p.Snapshot(false)
		return s.Exits[ExitCrash] == 1 && s.HardTimeouts == 0
	})
}

// TestReloadsCounted: a reload that fails and one that takes effect are each counted, and
// the old workers' exits are counted as reloads.
func TestReloadsCounted(t *testing.T) {
	opts, setMode := modeFile(t, "echo")
	p := startPool(t, opts)
	setMode("fatal")
	if err := p.Reload(context.Background()); err == nil {
		t.Fatal("a reload with a broken app succeeded")
	}
	setMode("echo")
	if err := p.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the reloads and the old workers' exits counted", func() bool {
		s := p.Snapshot(false)
		return s.Reloads == 1 && s.FailedReloads == 1 && s.Exits[ExitReload] >= 2 && s.Exits[ExitCrash] == 0
	})
	if s := p.Snapshot(false); s.MemoryPeak <= 0 {
		t.Errorf("memory peak %d", s.MemoryPeak)
	}
}
