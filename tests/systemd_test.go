//go:build integration

// The systemd recipe (deploy/systemd): both units pass systemd-analyze verify, and the gateway
// runs with the service's environment on a socket passed by systemd-socket-activate, as
// systemd would pass the socket unit's (LISTEN_FDS), telling a NOTIFY_SOCKET it is ready
// (Type=notify).

package tests

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSystemdRecipe(t *testing.T) {
	needPythonFlask(t)
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		missingTool(t, "systemd-analyze (Debian package systemd): %v", err)
	}
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		missingTool(t, "systemd-socket-activate (Debian package systemd): %v", err)
	}
	src := filepath.Join(repoRoot(), "deploy/systemd")
	service, err := os.ReadFile(filepath.Join(src, "wsgi-fcgi.service"))
	if err != nil {
		t.Fatal(err)
	}
	socket, err := os.ReadFile(filepath.Join(src, "wsgi-fcgi.socket"))
	if err != nil {
		t.Fatal(err)
	}

	// systemd-analyze checks the ExecStart binary exists: point it at the one under test.
	dir := shortTempDir(t)
	unit := strings.Replace(string(service), "ExecStart=/usr/local/bin/wsgi-fcgi", "ExecStart="+gatewayBin, 1)
	if unit == string(service) {
		t.Fatal("wsgi-fcgi.service: no ExecStart=/usr/local/bin/wsgi-fcgi line to check")
	}
	for name, content := range map[string]string{"wsgi-fcgi.service": unit, "wsgi-fcgi.socket": string(socket)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, "wsgi-fcgi.socket"), filepath.Join(dir, "wsgi-fcgi.service")).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify\n", "NotifyAccess=main", "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM"} {
		if !strings.Contains(unit, want) {
			t.Errorf("wsgi-fcgi.service lacks %q", want)
		}
	}

	// The service's settings, with the app and interpreter of this test.
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		if kv, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Environment="); ok {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	checkSettings(t, "wsgi-fcgi.service", env, knownSettings(t))
	env["WSGI_FCGI_APP"] = "flaskapp:app"
	env["WSGI_FCGI_CHDIR"] = filepath.Join(repoRoot(), "tests", "apps")
	env["WSGI_FCGI_PYTHON"] = systemPython
	env["WSGI_FCGI_WORKERS"] = "1"
	// Set to something that must be ignored: the socket comes from systemd.
	env["WSGI_FCGI_LISTEN"] = "127.0.0.1:1"

	sock := filepath.Join(dir, "wsgi-fcgi.sock")
	// Type=notify: systemd's NOTIFY_SOCKET, played by the test.
	notify := listenNotify(t)
	env["NOTIFY_SOCKET"] = notify.path
	args := []string{"--listen=" + sock}
	for k, v := range env {
		args = append(args, "--setenv="+k+"="+v)
	}
	args = append(args, gatewayBin)
	cmd := exec.Command(activate, args...)
	cmd.Env = gatewayEnv(nil)
	p := startProcess(t, "systemd-socket-activate", cmd)
	// The socket exists at once (systemd-socket-activate made it); the gateway starts on the
	// first connection, like a socket unit would start the service.
	if err := waitDial(p, "unix", sock, startTimeout); err != nil {
		t.Fatalf("%v\n%s", err, p.stderr.String())
	}
	deadline := time.Now().Add(startTimeout)
	for {
		out, err := exec.Command(gatewayBin, "probe", sock, "/query?x=1").CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe through the activated socket: %v %s\ngateway:\n%s", err, out, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := notifyFields(notify.next(t, "READY=1")); m["READY"] != "1" {
		t.Errorf("first message on NOTIFY_SOCKET %q, want READY=1", m)
	}
	// systemctl stop: SIGTERM, STOPPING=1, exit 0.
	p.terminate()
	if m := notifyFields(notify.next(t, "STOPPING=1")); m["STOPPING"] != "1" {
		t.Errorf("on SIGTERM %q, want STOPPING=1", m)
	}
	select {
	case <-p.done:
		if !p.state.Success() {
			t.Errorf("exit %v after SIGTERM, want 0\n%s", p.state, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit 15 s after SIGTERM")
	}
}
