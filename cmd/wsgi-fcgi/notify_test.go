//go:build linux

package main

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// recordingNotifier is a notifier whose messages go to a channel.
func recordingNotifier() (*notifier, chan string) {
	msgs := make(chan string, 16)
	return &notifier{log: hclog.NewNullLogger(), send: func(s string) error { msgs <- s; return nil }}, msgs
}

// TestNotifierSequence: the messages of a start, a reload, a failed reload, a periodic status
// and a stop, in order.
func TestNotifierSequence(t *testing.T) {
	n, msgs := recordingNotifier()
	n.ready("2 workers, 0 busy, 0.0 requests/s")
	n.reloadStarted()
	n.status("must not be sent during a reload")
	n.reloadEnded(nil)
	n.reloadStarted()
	n.reloadEnded(errors.New("cannot import \"mysite.wsgi\":\nSyntaxError"))
	n.status("2 workers, 1 busy, 3.0 requests/s")
	n.reloadStarted()
	n.reloadEnded(nil)
	n.status("2 workers, 0 busy, 1.0 requests/s")
	n.stopping()
	close(msgs)
	var got []string
	for m := range msgs {
		got = append(got, m)
	}
	want := []string{
		"READY=1\nSTATUS=2 workers, 0 busy, 0.0 requests/s",
		"RELOADING=1\nMONOTONIC_USEC=*\nSTATUS=reloading the app",
		"READY=1\nSTATUS=reloaded the app",
		"RELOADING=1\nMONOTONIC_USEC=*\nSTATUS=reloading the app",
		"READY=1\nSTATUS=reload failed, the old workers serve: cannot import \"mysite.wsgi\": SyntaxError",
		"STATUS=2 workers, 1 busy, 3.0 requests/s; reload failed, the old workers serve: cannot import \"mysite.wsgi\": SyntaxError",
		"RELOADING=1\nMONOTONIC_USEC=*\nSTATUS=reloading the app",
		"READY=1\nSTATUS=reloaded the app",
		"STATUS=2 workers, 0 busy, 1.0 requests/s",
		"STOPPING=1\nSTATUS=stopping: finishing running requests",
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d:\n%q", len(got), len(want), got)
	}
	for i := range want {
		if !matchNotify(got[i], want[i]) {
			t.Errorf("message %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// matchNotify compares a message with a pattern whose MONOTONIC_USEC=* takes any number.
func matchNotify(got, pattern string) bool {
	gl, pl := strings.Split(got, "\n"), strings.Split(pattern, "\n")
	if len(gl) != len(pl) {
		return false
	}
	for i := range pl {
		if pl[i] == "MONOTONIC_USEC=*" {
			v, ok := strings.CutPrefix(gl[i], "MONOTONIC_USEC=")
			if !ok || v == "" || strings.Trim(v, "0123456789") != "" {
				return false
			}
			continue
		}
		if gl[i] != pl[i] {
			return false
		}
	}
	return true
}

func TestStatusText(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name      string
		prev, cur poolSample
		want      string
	}{
		{"first", poolSample{at: t0}, poolSample{at: t0, processes: 4}, "4 workers, 0 busy, 0.0 requests/s"},
		{"a rate", poolSample{at: t0, served: 100}, poolSample{at: t0.Add(5 * time.Second), processes: 4, busy: 2, served: 162}, "4 workers, 2 busy, 12.4 requests/s"},
		{"clock went nowhere", poolSample{at: t0, served: 1}, poolSample{at: t0, processes: 1, served: 5}, "1 worker, 0 busy, 0.0 requests/s"},
	} {
		if got := statusText(tc.prev, tc.cur); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRunStatus: each tick sends STATUS= with the rate since the tick before; the loop ends
// with its context.
func TestRunStatus(t *testing.T) {
	n, msgs := recordingNotifier()
	t0 := time.Unix(1000, 0)
	samples := []poolSample{
		{at: t0.Add(2 * time.Second), processes: 2, served: 20},
		{at: t0.Add(4 * time.Second), processes: 2, busy: 1, served: 21},
	}
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	i := 0
	go func() {
		defer close(done)
		n.runStatus(ctx, ticks, poolSample{at: t0}, func() poolSample { i++; return samples[i-1] })
	}()
	for _, want := range []string{"STATUS=2 workers, 0 busy, 10.0 requests/s", "STATUS=2 workers, 1 busy, 0.5 requests/s"} {
		ticks <- time.Time{}
		if got := <-msgs; got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
	cancel()
	<-done
}

// TestNotifySocket: through a real NOTIFY_SOCKET (a unixgram socket, as systemd listens on),
// and nothing without one. The workers' environment has no NOTIFY_SOCKET.
func TestNotifySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv(notifySocketVar, path)
	n := newNotifier(func(k string) string { return map[string]string{notifySocketVar: path}[k] }, hclog.NewNullLogger())
	if !n.enabled() {
		t.Fatal("a notifier with NOTIFY_SOCKET is not enabled")
	}
	n.ready("up")
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, err := conn.Read(buf)
	if err != nil || string(buf[:k]) != "READY=1\nSTATUS=up" {
		t.Errorf("read %q %v, want READY=1 and the status", buf[:k], err)
	}
	if off := newNotifier(func(string) string { return "" }, hclog.NewNullLogger()); off.enabled() {
		t.Error("a notifier without NOTIFY_SOCKET is enabled")
	}
	var none *notifier // what a caller without a service manager may pass
	none.ready("up")
	none.reloadStarted()
	none.reloadEnded(nil)
	none.status("up")
	none.stopping()
	if none.enabled() {
		t.Error("a nil notifier is enabled")
	}
	env := withoutNotifySocket([]string{"PATH=/bin", notifySocketVar + "=" + path, "NOTIFY_SOCKETS=x"})
	if strings.Join(env, " ") != "PATH=/bin NOTIFY_SOCKETS=x" {
		t.Errorf("workers' environment %q", env)
	}
}
