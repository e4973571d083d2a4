//go:build linux

// listeners.go: every way a web server reaches the gateway. The sockets handed over by a
// parent (systemd's LISTEN_FDS, or fd 0 as mod_fcgid, spawn-fcgi and lighttpd pass it), the
// --listen addresses (TCP v4/v6, unix sockets with their mode, owner and group), and the
// FCGI_WEB_SERVER_ADDRS allow-list in front of the TCP ones.

package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/hashicorp/go-hclog"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
)

// defaultListen is --listen when nothing is set and no socket is inherited.
const defaultListen = "127.0.0.1:9000"

// listenFlag is --listen: it may be repeated, and takes comma-separated addresses. The first
// use replaces the environment's value; later ones add to it.
type listenFlag struct{ c *Config }

func (f listenFlag) String() string {
	if f.c == nil {
		return ""
	}
	return f.c.Listen
}

func (listenFlag) accepts() (string, string) {
	return "host:port, [::1]:port, /path/to.sock or unix:PATH", "127.0.0.1:9000"
}

func (f listenFlag) Set(s string) error {
	if f.c.listenSet && f.c.Listen != "" {
		f.c.Listen += "," + s
	} else {
		f.c.Listen = s
	}
	f.c.listenSet = true
	return nil
}

// listener is one socket the gateway serves, with how it came to be.
type listener struct {
	net.Listener
	origin string // "systemd", "fd 0" or "--listen"
}

// listenEnv is what openListeners reads from the process: a seam for tests.
type listenEnv struct {
	getenv   func(string) string
	unsetenv func(string) error
	getpid   func() int
}

var osListenEnv = listenEnv{getenv: os.Getenv, unsetenv: os.Unsetenv, getpid: os.Getpid}

// openListeners opens every socket the gateway serves: inherited ones first, then the
// --listen addresses. An inherited socket replaces the default address (an explicit --listen
// is served as well). On error every socket opened so far is closed.
func openListeners(cfg *Config, env listenEnv, log hclog.Logger) (_ []listener, err error) {
	var out []listener
	defer func() {
		if err != nil {
			for _, l := range out {
				l.Close()
			}
		}
	}()
	sd, err := systemdListeners(env)
	if err != nil {
		return nil, err
	}
	for _, l := range sd {
		out = append(out, listener{l, "systemd"})
	}
	if len(out) == 0 {
		l, err := fd0Listener()
		if err != nil {
			return nil, err
		}
		if l != nil {
			out = append(out, listener{l, "fd 0"})
		}
	}
	explicit := cfg.listenSet || env.getenv(envPrefix+"_LISTEN") != ""
	addrs := splitList(cfg.Listen)
	if len(out) > 0 && !explicit {
		addrs = nil
	}
	if len(out) == 0 && len(addrs) == 0 {
		addrs = []string{defaultListen}
	}
	perm, err := parseSocketPerm(cfg.SocketMode, cfg.SocketOwner, cfg.SocketGroup)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		l, err := fcgi.ListenMode(a, perm.bindMode())
		if err != nil {
			return out, fmt.Errorf("listen %s: %w", a, err)
		}
		out = append(out, listener{l, "--listen"})
		if ul, ok := l.(*net.UnixListener); ok {
			if err := perm.apply(ul.Addr().String()); err != nil {
				return out, fmt.Errorf("listen %s: %w", a, err)
			}
		}
	}

	allowed, err := parseWebServerAddrs(cfg.WebServerAddrs, env.getenv("FCGI_WEB_SERVER_ADDRS"))
	if err != nil {
		return out, err
	}
	if len(allowed) > 0 {
		for i := range out {
			out[i].Listener = &allowListener{Listener: out[i].Listener, allowed: allowed, log: log}
		}
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// systemdListeners returns the sockets of systemd socket activation (sd_listen_fds(3)):
// LISTEN_PID is this process and LISTEN_FDS sockets start at fd 3. go-systemd's activation
// package takes the descriptors and unsets the variables, so that the workers do not see
// them; env decides whether there are any, and refuses a LISTEN_FDS that is no count (which
// activation would ignore). Every descriptor must be a listening socket.
func systemdListeners(env listenEnv) ([]net.Listener, error) {
	pid, fds := env.getenv("LISTEN_PID"), env.getenv("LISTEN_FDS")
	if pid == "" || fds == "" || pid != strconv.Itoa(env.getpid()) {
		return nil, nil
	}
	if n, err := strconv.Atoi(fds); err != nil || n < 1 || n > 1024 {
		for _, name := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			env.unsetenv(name)
		}
		return nil, fmt.Errorf("systemd socket activation: LISTEN_FDS=%q is not a count of sockets", fds)
	}
	var out []net.Listener
	for _, f := range activation.Files(true) {
		l, err := fileListener(f, "LISTEN_FDS socket "+f.Name(), false)
		if err != nil {
			for _, l := range out {
				l.Close()
			}
			return nil, fmt.Errorf("systemd socket activation: %w", err)
		}
		out = append(out, l)
	}
	return out, nil
}

// fd0Listener returns the listening socket on fd 0 (FCGI_LISTENSOCK_FILENO), which is how
// mod_fcgid, spawn-fcgi and lighttpd start a FastCGI program, or nil when fd 0 is anything
// else (a terminal, /dev/null, a connected socket). Fd 0 is then pointed at /dev/null.
func fd0Listener() (net.Listener, error) {
	v, err := syscall.GetsockoptInt(0, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	if err != nil || v != 1 {
		return nil, nil // not a socket, or not a listening one
	}
	l, err := fileListener(os.NewFile(0, "fd 0"), "fd 0", true)
	if err != nil {
		return nil, fmt.Errorf("socket on fd 0 (FCGI_LISTENSOCK_FILENO): %w", err)
	}
	if null, err := os.Open(os.DevNull); err == nil {
		syscall.Dup3(int(null.Fd()), 0, 0)
		null.Close()
	}
	return l, nil
}

// fileListener makes a listener of an inherited descriptor. The listener holds a
// close-on-exec duplicate; the original is closed unless keep (fd 0, left to the caller). An
// inherited unix socket file is never removed: it belongs to whoever made it.
func fileListener(f *os.File, name string, keep bool) (net.Listener, error) {
	if f == nil {
		return nil, fmt.Errorf("%s: not an open descriptor", name)
	}
	l, err := net.FileListener(f)
	if !keep {
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	return l, nil
}

// socketPerm is --socket-mode, --socket-owner and --socket-group, resolved.
type socketPerm struct {
	mode       os.FileMode
	setMode    bool
	uid, gid   int // -1: unchanged
	owner, grp string
}

func parseSocketPerm(mode, owner, group string) (socketPerm, error) {
	p := socketPerm{uid: -1, gid: -1, owner: owner, grp: group}
	if mode != "" {
		m, err := strconv.ParseUint(mode, 8, 32)
		if err != nil || m > 0o777 {
			return p, fmt.Errorf("--socket-mode %q: want octal permissions such as 0660", mode)
		}
		p.mode, p.setMode = os.FileMode(m), true
	}
	if owner != "" {
		uid, err := lookupID(owner, func(s string) (string, error) {
			u, err := user.Lookup(s)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		})
		if err != nil {
			return p, fmt.Errorf("--socket-owner %q: %w", owner, err)
		}
		p.uid = uid
	}
	if group != "" {
		gid, err := lookupID(group, func(s string) (string, error) {
			g, err := user.LookupGroup(s)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		})
		if err != nil {
			return p, fmt.Errorf("--socket-group %q: %w", group, err)
		}
		p.gid = gid
	}
	return p, nil
}

// lookupID takes a numeric id as it is, or looks a name up.
func lookupID(s string, lookup func(string) (string, error)) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, nil
	}
	id, err := lookup(s)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(id)
}

// bindMode is the mode a unix socket file is made with: --socket-mode, so that the socket is
// never more open than asked, even before apply; else what the umask leaves of 0777.
func (p socketPerm) bindMode() os.FileMode {
	if p.setMode {
		return p.mode
	}
	return 0o777
}

// apply sets the socket file's owner, group and mode.
func (p socketPerm) apply(path string) error {
	if p.uid >= 0 || p.gid >= 0 {
		if err := os.Lchown(path, p.uid, p.gid); err != nil {
			return fmt.Errorf("set socket owner/group: %w", err)
		}
	}
	if p.setMode {
		if err := os.Chmod(path, p.mode); err != nil {
			return fmt.Errorf("set socket mode: %w", err)
		}
	}
	return nil
}

// parseWebServerAddrs reads the allow-list: --web-server-addrs, else the spec's
// FCGI_WEB_SERVER_ADDRS. Both are comma-separated IP addresses (the spec's form) or CIDR
// prefixes.
func parseWebServerAddrs(flagValue, specEnv string) ([]netip.Prefix, error) {
	src, name := flagValue, "--web-server-addrs"
	if src == "" {
		src, name = specEnv, "FCGI_WEB_SERVER_ADDRS"
	}
	var out []netip.Prefix
	for _, f := range splitList(src) {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an IP address or CIDR prefix", name, f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// allowListener closes, at once, TCP connections from addresses not in the allow-list, and
// logs them. Unix socket connections have no address and are let through: the socket file's
// permissions guard them.
type allowListener struct {
	net.Listener
	allowed []netip.Prefix
	log     hclog.Logger
}

func (l *allowListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ta, ok := c.RemoteAddr().(*net.TCPAddr)
		if !ok {
			return c, nil
		}
		ip, _ := netip.AddrFromSlice(ta.IP)
		if allowedAddr(l.allowed, ip.Unmap()) {
			return c, nil
		}
		l.log.Warn("connection refused: address not in the web server addresses (--web-server-addrs, FCGI_WEB_SERVER_ADDRS)",
			"remote", ta.String())
		c.Close()
	}
}

func allowedAddr(allowed []netip.Prefix, ip netip.Addr) bool {
	for _, p := range allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// serveListeners serves every listener on srv; the first Serve error is sent on served
// (buffered), the rest dropped. Each goroutine ends when srv is shut down or closed.
func serveListeners(srv *fcgi.Server, lns []listener, served chan<- error) {
	for _, l := range lns {
		go func() {
			err := srv.Serve(l.Listener)
			if !errors.Is(err, fcgi.ErrServerClosed) {
				err = fmt.Errorf("%s %s: %w", l.origin, l.Addr(), err)
			}
			select {
			case served <- err:
			default:
			}
		}()
	}
}

// listenAddrs describes the listeners for the log.
func listenAddrs(lns []listener) string {
	var b strings.Builder
	for i, l := range lns {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s:%s (%s)", l.Addr().Network(), l.Addr(), l.origin)
	}
	return b.String()
}
