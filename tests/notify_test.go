//go:build integration

// systemd's Type=notify: against a NOTIFY_SOCKET the test listens on (a unixgram socket, as
// systemd's), the gateway says READY=1 once serving, RELOADING=1 (with MONOTONIC_USEC) and
// READY=1 around each reload, READY=1 with a STATUS= naming the failure after a reload whose
// app does not import, and STOPPING=1 on SIGTERM; its workers do not see NOTIFY_SOCKET.

package tests

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifyListener is the service manager's end of NOTIFY_SOCKET: every message it receives.
type notifyListener struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifyListener{path: path, msgs: make(chan string, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return n
}

// next returns the next message that is not a periodic STATUS= alone.
func (n *notifyListener) next(t *testing.T, what string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("waiting for %s: the notify socket closed", what)
			}
			if strings.HasPrefix(m, "STATUS=") {
				continue
			}
			return m
		case <-timeout:
			t.Fatalf("no %s on NOTIFY_SOCKET after 20s", what)
			return ""
		}
	}
}

// notifyFields splits a message into its VAR=value lines.
func notifyFields(m string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(m, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

func TestSystemdNotify(t *testing.T) {
	appDir := shortTempDir(t)
	app, err := os.ReadFile(filepath.Join(repoRoot(), "tests", "apps", "whoamiapp.py"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(appDir, "notifyapp.py"), app, 0o644); err != nil {
		t.Fatal(err)
	}
	n := listenNotify(t)
	g := startGateway(t, gatewayConfig{app: "notifyapp", workers: 1, args: []string{"--chdir", appDir},
		env: []string{"NOTIFY_SOCKET=" + n.path}})

	m := notifyFields(n.next(t, "READY=1"))
	if m["READY"] != "1" || !strings.Contains(m["STATUS"], "1 worker") {
		t.Errorf("first message %q, want READY=1 with the workers in STATUS=", m)
	}
	if w := askWhoami(t, g.address); w.NotifySocket != nil {
		t.Errorf("the worker sees NOTIFY_SOCKET=%s", *w.NotifySocket)
	}

	// A reload: RELOADING=1 with the monotonic clock, then READY=1.
	reload := func() {
		t.Helper()
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		m := notifyFields(n.next(t, "RELOADING=1"))
		if m["RELOADING"] != "1" || m["MONOTONIC_USEC"] == "" || strings.Trim(m["MONOTONIC_USEC"], "0123456789") != "" {
			t.Errorf("at a reload %q, want RELOADING=1 and MONOTONIC_USEC", m)
		}
	}
	reload()
	if m := notifyFields(n.next(t, "READY=1")); m["READY"] != "1" || strings.Contains(m["STATUS"], "failed") {
		t.Errorf("after a reload %q, want READY=1", m)
	}

	// New code that does not import: READY=1 again (the old workers serve), and STATUS= says so.
	if err := os.WriteFile(filepath.Join(appDir, "notifyapp.py"), []byte("raise ImportError('half-deployed')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reload()
	m = notifyFields(n.next(t, "READY=1"))
	if m["READY"] != "1" || !strings.Contains(m["STATUS"], "reload failed") || !strings.Contains(m["STATUS"], "half-deployed") {
		t.Errorf("after a failed reload %q, want READY=1 and a STATUS= naming the failure", m)
	}
	if w := askWhoami(t, g.address); w.PID == 0 {
		t.Error("the old worker does not serve after the failed reload")
	}

	g.terminate()
	if m := notifyFields(n.next(t, "STOPPING=1")); m["STOPPING"] != "1" {
		t.Errorf("on SIGTERM %q, want STOPPING=1", m)
	}
}
