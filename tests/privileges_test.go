//go:build integration

// Privileges: --user as root (the gateway binds its socket, opens its access log and writes
// its pid file as root, then it and its workers, preloaded or not, run as the user), and
// --pid-file (written once listening, refused while a gateway holds it, replaced when stale,
// removed at exit).

package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// whoami is what tests/apps/whoamiapp.py answers.
type whoami struct {
	PID          int     `json:"pid"`
	UID          int     `json:"uid"`
	EUID         int     `json:"euid"`
	GID          int     `json:"gid"`
	EGID         int     `json:"egid"`
	Groups       []int   `json:"groups"`
	Home         *string `json:"home"`
	User         *string `json:"user"`
	NotifySocket *string `json:"notify_socket"`
}

// askWhoami asks the gateway on the unix socket sock which user its worker runs as.
func askWhoami(t *testing.T, sock string) whoami {
	t.Helper()
	res := rawGet(t, "unix", sock, "/whoami")
	if res.status() != 200 {
		t.Fatalf("GET /whoami: %q", res.stdout)
	}
	var w whoami
	if err := json.Unmarshal(res.body(), &w); err != nil {
		t.Fatalf("GET /whoami: %v: %q", err, res.body())
	}
	return w
}

// procIDs returns the Uid, Gid and Groups lines of /proc/PID/status, without their names.
func procIDs(t *testing.T, pid int) (uid, gid, groups string) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		v = strings.Join(strings.Fields(v), " ")
		switch k {
		case "Uid":
			uid = v
		case "Gid":
			gid = v
		case "Groups":
			groups = v
		}
	}
	return uid, gid, groups
}

// TestUserSwitch: started as root with --user nobody, the gateway (after binding its socket)
// and every worker run as nobody with nobody's group alone; the socket keeps the owner,
// group and mode it was given, and the web server's user (www-data) can connect to it; the
// access log and the pid file, in a directory only root may enter, were opened before the
// switch.
func TestUserSwitch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--user needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	web, err := user.Lookup("www-data")
	if err != nil {
		t.Skipf("no user www-data: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	webGID, _ := strconv.Atoi(web.Gid)
	for _, preload := range []bool{false, true} {
		t.Run(fmt.Sprintf("preload=%v", preload), func(t *testing.T) {
			sockDir := shortTempDir(t)
			if err := os.Chmod(sockDir, 0o755); err != nil { // www-data must reach the socket
				t.Fatal(err)
			}
			private := shortTempDir(t) // 0700 root: nobody cannot open files here
			sock := filepath.Join(sockDir, "gw.sock")
			accessLog := filepath.Join(private, "access.log")
			pidFile := filepath.Join(private, "gw.pid")
			args := []string{"--user", "nobody", "--socket-group", "www-data", "--socket-mode", "0660",
				"--access-log", accessLog, "--pid-file", pidFile}
			if preload {
				args = append(args, "--preload")
			}
			g := startGateway(t, gatewayConfig{app: "whoamiapp", workers: 2, listen: "unix:" + sock, args: args})

			// The socket accepts (into its backlog) from the moment it is bound, before the
			// switch; a worker answers only after it.
			w := askWhoami(t, sock)
			want := fmt.Sprintf("%d %d %d %d", uid, uid, uid, uid)
			if u, gr, groups := procIDs(t, g.pid()); u != want || gr != fmt.Sprintf("%d %d %d %d", gid, gid, gid, gid) || groups != nobody.Gid {
				t.Errorf("gateway /proc status: Uid %q Gid %q Groups %q; want uid %d, gid %d, groups %s", u, gr, groups, uid, gid, nobody.Gid)
			}
			if w.UID != uid || w.EUID != uid || w.GID != gid || w.EGID != gid || fmt.Sprint(w.Groups) != fmt.Sprintf("[%d]", gid) {
				t.Errorf("worker runs as %+v, want uid %d gid %d groups [%d]", w, uid, gid, gid)
			}
			if w.User == nil || *w.User != "nobody" || w.Home == nil || *w.Home != nobody.HomeDir {
				t.Errorf("worker's USER %v HOME %v, want nobody and %s", w.User, w.Home, nobody.HomeDir)
			}
			for _, pid := range g.workerPIDs() {
				if u, _, _ := procIDs(t, pid); u != want {
					t.Errorf("worker pid %d: Uid %q, want %q", pid, u, want)
				}
			}

			st, err := os.Stat(sock)
			if err != nil {
				t.Fatal(err)
			}
			if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 || int(sys.Gid) != webGID || st.Mode().Perm() != 0o660 {
				t.Errorf("socket uid %d gid %d mode %v, want root, www-data (%d), 0660", sys.Uid, sys.Gid, st.Mode().Perm(), webGID)
			}
			connectAs(t, web, sock)

			if b, err := os.ReadFile(pidFile); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(g.pid()) {
				t.Errorf("pid file: %q %v, want %d", b, err, g.pid())
			}
			deadline := time.Now().Add(5 * time.Second) // flushed every second
			for {
				b, _ := os.ReadFile(accessLog)
				if strings.Contains(string(b), "/whoami") {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("access log has no line for /whoami: %q", b)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if strings.Contains(g.stderr.String(), "run as root") {
				t.Errorf("the root warning with --user:\n%s", g.stderr.String())
			}
			if !strings.Contains(g.stderr.String(), "running as: user=nobody") {
				t.Errorf("the log does not say the gateway switched users:\n%s", g.stderr.String())
			}
		})
	}
}

// connectAs connects to the unix socket sock as u (a python3 run as that user), as a web
// server's workers would.
func connectAs(t *testing.T, u *user.User, sock string) {
	t.Helper()
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command(systemPython, "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('connected')", sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "connected") {
		t.Errorf("%s cannot connect to %s: %v\n%s", u.Username, sock, err, out)
	}
}

// TestUserRefused: --user naming an unknown user is one line and exit status 2, before the
// app is imported; so is --user naming another user when the gateway is not root.
func TestUserRefused(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "gw.sock")
	checkStartupError(t, sock, append(startupArgs(sock, nil, nil), "--user", "no-such-user-here"), nil,
		[]string{"--user", "no-such-user-here", "unknown user"})
	if os.Geteuid() != 0 {
		checkStartupError(t, sock, append(startupArgs(sock, nil, nil), "--user", "root"), nil,
			[]string{"--user root", "only root can switch users"})
	}
}

// TestPIDFile: the pid file holds the gateway's pid once it listens; a second gateway with
// the same file is refused (exit 2, one line, nothing listening); the file goes at exit; a
// stale one is replaced, with a log line.
func TestPIDFile(t *testing.T) {
	dir := shortTempDir(t)
	pidFile := filepath.Join(dir, "gw.pid")
	g := startGateway(t, gatewayConfig{app: "whoamiapp", workers: 1, args: []string{"--pid-file", pidFile}})
	if b, err := os.ReadFile(pidFile); err != nil || string(b) != strconv.Itoa(g.pid())+"\n" {
		t.Fatalf("pid file: %q %v, want %d", b, err, g.pid())
	}

	sock := filepath.Join(dir, "second.sock")
	checkStartupError(t, sock, append(startupArgs(sock, []string{"--app", "whoamiapp"}, nil), "--pid-file", pidFile), nil,
		[]string{"--pid-file", pidFile, fmt.Sprintf("wsgi-fcgi pid %d is running", g.pid())})
	if b, _ := os.ReadFile(pidFile); string(b) != strconv.Itoa(g.pid())+"\n" {
		t.Errorf("the refused gateway changed the pid file: %q", b)
	}

	if st := g.stop(t); !st.Success() {
		t.Errorf("exit on SIGTERM: %v", st)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left after a clean exit: %v", err)
	}

	// A stale file: the pid of a process that has exited.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g2 := startGateway(t, gatewayConfig{app: "whoamiapp", workers: 1, args: []string{"--pid-file", pidFile}})
	if b, err := os.ReadFile(pidFile); err != nil || string(b) != strconv.Itoa(g2.pid())+"\n" {
		t.Errorf("stale pid file not replaced: %q %v, want %d", b, err, g2.pid())
	}
	g2.waitLog(t, "replaced a stale pid file", 5*time.Second)
}
