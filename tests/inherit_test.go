//go:build integration

// The ways in that are not --listen alone: the listening socket inherited on fd 0 from
// spawn-fcgi (as mod_fcgid and lighttpd pass it), systemd socket activation through
// systemd-socket-activate (several sockets at once), unix socket permissions, and the
// FCGI_WEB_SERVER_ADDRS allow-list over IPv4 and IPv6 listeners.

package tests

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// inheritedGatewayArgs is the gateway's command line without --listen: the socket comes from
// the parent.
func inheritedGatewayArgs() []string {
	return []string{
		"--app", "frontapp:application", "--chdir", filepath.Join(repoRoot(), "tests", "apps"),
		"--python", systemPython, "--workers", "1",
	}
}

// startInherited starts a launcher (spawn-fcgi, systemd-socket-activate) that hands the
// gateway its sockets, and waits until addr answers FastCGI.
func startInherited(t *testing.T, name, bin string, args []string, network, addr string) *process {
	t.Helper()
	needPythonFlask(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = gatewayEnv(nil)
	p := startProcess(t, name, cmd)
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			vals := getValues(t, c, "FCGI_MPXS_CONNS")
			c.Close()
			if vals["FCGI_MPXS_CONNS"] == "1" {
				return p
			}
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("%s: no FastCGI on %s %s (exited: %v)\nstderr:\n%s", name, network, addr, p.exited(), p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSpawnFcgi(t *testing.T) {
	bin, err := exec.LookPath("spawn-fcgi")
	if err != nil {
		missingTool(t, "spawn-fcgi not found (Debian package spawn-fcgi)")
	}
	sock := filepath.Join(shortTempDir(t), "spawned.sock")
	// -n: spawn-fcgi binds the socket, puts it on fd 0 and execs the gateway in its place.
	args := append([]string{"-n", "-s", sock, "-M", "0600", "--", gatewayBin}, inheritedGatewayArgs()...)
	p := startInherited(t, "spawn-fcgi", bin, args, "unix", sock)
	res := rawGet(t, "unix", sock, "/env?via=spawn-fcgi")
	if res.status() != 200 || !strings.Contains(string(res.body()), `"QUERY_STRING": "via=spawn-fcgi"`) {
		t.Fatalf("GET through the inherited socket: %q", res.stdout)
	}
	if !strings.Contains(p.stderr.String(), "(fd 0)") {
		t.Errorf("the gateway did not say it serves the socket on fd 0:\n%s", p.stderr.String())
	}
	// The socket belongs to spawn-fcgi's caller: the gateway leaves the file in place.
	if st := p.stop(t); !st.Success() {
		t.Errorf("gateway exit on SIGTERM: %v", st)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("inherited socket file removed by the gateway: %v", err)
	}
}

func TestSystemdSocketActivate(t *testing.T) {
	bin, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		missingTool(t, "systemd-socket-activate not found (Debian package systemd)")
	}
	sock := filepath.Join(shortTempDir(t), "activated.sock")
	port := freePort(t, "tcp4", "127.0.0.1")
	tcp := fmt.Sprintf("127.0.0.1:%d", port)
	// Two sockets: LISTEN_FDS=2, fds 3 and 4, both served.
	args := append([]string{"-l", sock, "-l", tcp, "--", gatewayBin}, inheritedGatewayArgs()...)
	p := startInherited(t, "systemd-socket-activate", bin, args, "unix", sock)
	for _, a := range []struct{ network, addr string }{{"unix", sock}, {"tcp", tcp}} {
		if res := rawGet(t, a.network, a.addr, "/env"); res.status() != 200 {
			t.Errorf("GET over %s %s: %q", a.network, a.addr, res.stdout)
		}
	}
	if n := strings.Count(p.stderr.String(), "(systemd)"); n != 2 {
		t.Errorf("gateway log names %d systemd sockets, want 2:\n%s", n, p.stderr.String())
	}
	// The workers must not see LISTEN_* (they would take the sockets for theirs).
	if res := rawGet(t, "unix", sock, "/env"); strings.Contains(string(res.body()), "LISTEN_") {
		t.Errorf("LISTEN_* reached the app: %s", res.body())
	}
}

// Unix socket mode and group are set, the socket file is removed on exit, and a stale socket
// file (nobody listening) is replaced.
func TestUnixSocketPermissions(t *testing.T) {
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "perm.sock")
	// A stale socket: bound, then its listener gone without removing the file.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	g := startGateway(t, gatewayConfig{app: "frontapp:application", workers: 1, listen: "unix:" + sock,
		args: []string{"--socket-mode", "0660", "--socket-group", "1234"}})
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o660 || st.Sys().(*syscall.Stat_t).Gid != 1234 {
		t.Errorf("socket mode %v gid %d, want 0660 and 1234", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid)
	}
	if res := rawGet(t, "unix", sock, "/env"); res.status() != 200 {
		t.Errorf("GET: %q", res.stdout)
	}
	g.stop(t)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left after exit: %v", err)
	}
}

// Several listeners at once, IPv4 and IPv6, behind --web-server-addrs: a connection from an
// address not listed is closed at once and logged.
func TestWebServerAddrs(t *testing.T) {
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		l.Close()
	}
	p4 := freePort(t, "tcp4", "127.0.0.1")
	p6 := freePort(t, "tcp6", "::1")
	v4, v6 := "127.0.0.1:"+strconv.Itoa(p4), "[::1]:"+strconv.Itoa(p6)
	g := startGateway(t, gatewayConfig{app: "frontapp:application", workers: 1, listen: v4,
		args: []string{"--listen", v6}, env: []string{"FCGI_WEB_SERVER_ADDRS=127.0.0.1"}})
	if res := rawGet(t, "tcp", v4, "/env"); res.status() != 200 {
		t.Errorf("GET from 127.0.0.1: %q", res.stdout)
	}
	c := dialGateway(t, "tcp", v6)
	c.Write(fcgiRequest(1, "GET", "/env", nil, true))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Errorf("connection from ::1 answered %d bytes; want it closed", n)
	}
	g.waitLog(t, "address not in the web server addresses", 5*time.Second)
}
