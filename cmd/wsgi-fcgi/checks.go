//go:build linux

// checks.go: what can be checked about the settings before the app is imported and the
// workers start — the addresses to listen on, the socket files' mode, owner and group, the
// interpreter, the log files' directories — so that a mistake there is one line and exit
// status 2, not a failure after the workers are ready.

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// checkBeforeStart checks the settings against the machine. env says whether a socket is
// inherited: then the default --listen address is not used, and not checked.
func checkBeforeStart(c *Config, env listenEnv) error {
	if c.listenSet || c.given["listen"] != fromDefault || !inheritsSocket(env) {
		for _, addr := range splitList(c.Listen) {
			if reason := checkListenAddr(addr, true); reason != "" && !(bool(c.checkConfig) && servedNow(addr)) {
				return c.invalidValue("listen", addr, reason)
			}
		}
	}
	if c.HTTP != "" {
		if reason := checkListenAddr(c.HTTP, false); reason != "" && !(bool(c.checkConfig) && servedNow(c.HTTP)) {
			return c.invalid("http", reason)
		}
	}
	if _, err := parseSocketPerm(c.SocketMode, "", ""); err != nil {
		return c.invalid("socket-mode", "octal permissions such as 0660")
	}
	if _, err := parseSocketPerm("", c.SocketOwner, ""); err != nil {
		return c.invalid("socket-owner", "a user name or uid of this machine ("+errText(err)+")")
	}
	if _, err := parseSocketPerm("", "", c.SocketGroup); err != nil {
		return c.invalid("socket-group", "a group name or gid of this machine ("+errText(err)+")")
	}
	if perm, err := parseSocketPerm("", c.SocketOwner, c.SocketGroup); err == nil && hasUnixAddr(c.Listen) {
		gids, _ := os.Getgroups()
		if name, want := socketChownProblem(perm.uid, perm.gid, c.SocketGroup, os.Geteuid(), append(gids, os.Getegid())); want != "" {
			return c.invalid(name, want)
		}
	}
	if err := checkCredentials(c, osAccounts); err != nil {
		return err
	}
	if reason := checkPIDFile(c.PIDFile, nil); reason != "" {
		return c.invalid("pid-file", reason)
	}
	if _, err := parseWebServerAddrs(c.WebServerAddrs, ""); err != nil {
		return c.invalid("web-server-addrs", "comma-separated IP addresses and CIDR prefixes")
	}
	if spec := env.getenv("FCGI_WEB_SERVER_ADDRS"); c.WebServerAddrs == "" && spec != "" {
		if _, err := parseWebServerAddrs("", spec); err != nil {
			return fmt.Errorf("FCGI_WEB_SERVER_ADDRS=%q: want comma-separated IP addresses, e.g. FCGI_WEB_SERVER_ADDRS=127.0.0.1,10.0.0.2 (or set --web-server-addrs)", spec)
		}
	}
	if _, err := exec.LookPath(c.Python); err != nil {
		return c.invalid("python", "a Python interpreter: a path to one, or a name found on PATH ("+errText(err)+")")
	}
	if reason := checkLogFile(c.AccessLog); reason != "" {
		return c.invalid("access-log", reason)
	}
	if reason := checkLogFile(c.LogFile); reason != "" {
		return c.invalid("log-file", reason)
	}
	return nil
}

// inheritsSocket reports whether the gateway was handed a listening socket: systemd's
// LISTEN_FDS for this process, or a listening socket on fd 0.
func inheritsSocket(env listenEnv) bool {
	if env.getenv("LISTEN_FDS") != "" && env.getenv("LISTEN_PID") == strconv.Itoa(env.getpid()) {
		return true
	}
	v, err := syscall.GetsockoptInt(0, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	return err == nil && v == 1
}

// checkListenAddr returns what is wrong with listening on addr, or "": the address's form,
// the port's range, a unix socket's directory, and whether the address is free (a trial
// listen, closed at once). unixOK is false for an address that must be TCP.
func checkListenAddr(addr string, unixOK bool) string {
	path, isUnix := strings.CutPrefix(addr, "unix:")
	if !isUnix && strings.Contains(addr, "/") {
		path, isUnix = addr, true
	}
	if isUnix {
		if !unixOK {
			return "host:port (a TCP address)"
		}
		return checkSocketPath(path)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if _, perr := strconv.Atoi(addr); perr == nil {
			return "host:port (a port alone names no interface: 127.0.0.1:" + addr + " is this machine only)"
		}
		return "host:port, [::1]:port, /path/to.sock or unix:PATH"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		if _, err := net.LookupPort("tcp", port); err != nil {
			return "a port from 0 to 65535"
		}
	}
	if strings.ContainsAny(host, " \t") {
		return "host:port with a host name or an IP address"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "an address the gateway can listen on (" + errText(err) + ")"
	}
	l.Close()
	return ""
}

// checkSocketPath returns what is wrong with making a unix socket at path, or "".
func checkSocketPath(path string) string {
	if path == "" {
		return "a unix socket path, e.g. unix:/run/mysite.sock"
	}
	if strings.HasPrefix(path, "@") {
		return "" // Linux's abstract namespace: no file
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "a socket path in an existing directory (" + dir + " does not exist)"
	case err != nil:
		return "a socket path in a directory the gateway can reach (" + errText(err) + ")"
	case !st.IsDir():
		return "a socket path in a directory (" + dir + " is not one)"
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return "a socket path in a directory the gateway may write to (" + dir + ": " + errText(err) + ")"
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return ""
	}
	if fi.Mode().Type() != os.ModeSocket {
		return "a socket path (" + path + " exists and is not a socket)"
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return "a socket path nothing else serves on (another process listens on " + path + ")"
	}
	return "" // a stale socket file, replaced when the gateway listens
}

// checkLogFile returns what is wrong with appending to the log file path, or "" ("" and "-"
// are no file).
func checkLogFile(path string) string {
	if path == "" || path == "-" {
		return ""
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return "a file, not a directory"
		}
		if err := unix.Access(path, unix.W_OK); err != nil {
			return "a file the gateway may write to (" + errText(err) + ")"
		}
		return ""
	}
	return checkFileDir(path)
}

// checkFileDir says why a file cannot be made at path: its directory is missing, not one, or
// not writable; "" when it can.
func checkFileDir(path string) string {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "a file in an existing directory (" + dir + " does not exist)"
	case err != nil:
		return "a file in a directory the gateway can reach (" + errText(err) + ")"
	case !st.IsDir():
		return "a file in a directory (" + dir + " is not one)"
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return "a file in a directory the gateway may write to (" + dir + ": " + errText(err) + ")"
	}
	return ""
}
