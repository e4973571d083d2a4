//go:build linux

package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fakeEnv is a listenEnv over a map.
func fakeEnv(vars map[string]string) listenEnv {
	return listenEnv{
		getenv:   func(k string) string { return vars[k] },
		unsetenv: func(k string) error { delete(vars, k); return nil },
		getpid:   func() int { return 4242 },
	}
}

func TestListenFlagRepeats(t *testing.T) {
	t.Setenv("WSGI_FCGI_LISTEN", "/tmp/from-env.sock")
	for _, tc := range []struct {
		name string
		args []string
		want string
		set  bool
	}{
		{"env only", nil, "/tmp/from-env.sock", false},
		{"flag replaces env", []string{"--listen", "127.0.0.1:1"}, "127.0.0.1:1", true},
		{"repeated", []string{"--listen", "127.0.0.1:1", "--listen", "[::1]:2"}, "127.0.0.1:1,[::1]:2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if c.Listen != tc.want || c.listenSet != tc.set {
				t.Errorf("Listen %q set %v, want %q %v", c.Listen, c.listenSet, tc.want, tc.set)
			}
		})
	}
}

func TestParseWebServerAddrs(t *testing.T) {
	for _, tc := range []struct {
		name, flag, env string
		allow, deny     []string
		wantErr         string
	}{
		{name: "none: nothing listed", flag: "", env: ""},
		{name: "spec variable", env: "127.0.0.1,10.0.0.5", allow: []string{"127.0.0.1", "10.0.0.5"}, deny: []string{"10.0.0.6", "::1"}},
		{name: "flag wins", flag: "10.0.0.0/8", env: "127.0.0.1", allow: []string{"10.1.2.3"}, deny: []string{"127.0.0.1"}},
		{name: "ipv6 and spaces", flag: " ::1 , fd00::/8", allow: []string{"::1", "fd00::1"}, deny: []string{"::2"}},
		{name: "v4-mapped", flag: "::ffff:127.0.0.1", allow: []string{"127.0.0.1"}},
		{name: "bad", flag: "example.com", wantErr: "--web-server-addrs"},
		{name: "bad spec variable", env: "10.0.0.0/99", wantErr: "FCGI_WEB_SERVER_ADDRS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWebServerAddrs(tc.flag, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tc.allow {
				if !allowedAddr(got, netip.MustParseAddr(a)) {
					t.Errorf("%s refused by %v", a, got)
				}
			}
			for _, a := range tc.deny {
				if allowedAddr(got, netip.MustParseAddr(a)) {
					t.Errorf("%s allowed by %v", a, got)
				}
			}
		})
	}
}

// A connection from an address not listed is closed before the server sees it.
func TestAllowListener(t *testing.T) {
	for _, tc := range []struct {
		name    string
		allowed string
		accept  bool
	}{
		{"listed", "127.0.0.1", true},
		{"not listed", "10.0.0.0/8", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			allowed, _ := parseWebServerAddrs(tc.allowed, "")
			al := &allowListener{Listener: l, allowed: allowed, log: hclog.NewNullLogger()}
			defer al.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := al.Accept()
				if err == nil {
					accepted <- c
				}
			}()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, rerr := c.Read(make([]byte, 1))
			select {
			case sc := <-accepted:
				sc.Close()
				if !tc.accept {
					t.Error("connection from an unlisted address accepted")
				}
			default:
				if tc.accept {
					t.Errorf("listed address not accepted (read: %v)", rerr)
				}
				var ne net.Error
				if errors.As(rerr, &ne) && ne.Timeout() {
					t.Error("unlisted connection left open")
				}
			}
		})
	}
}

func TestOpenListeners(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "a.sock")
	for _, tc := range []struct {
		name    string
		cfg     Config
		env     map[string]string
		want    []string // networks of the listeners, in order
		wantErr string
	}{
		{name: "default", cfg: Config{Listen: "127.0.0.1:0"}, want: []string{"tcp"}},
		{name: "several", cfg: Config{Listen: "127.0.0.1:0, unix:" + sock, SocketMode: "0600"}, want: []string{"tcp", "unix"}},
		{
			name: "systemd variables for another process are ignored",
			cfg:  Config{Listen: "127.0.0.1:0"}, env: map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "1"},
			want: []string{"tcp"},
		},
		{
			name: "bad LISTEN_FDS", cfg: Config{Listen: "127.0.0.1:0"},
			env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "many"}, wantErr: "LISTEN_FDS",
		},
		{name: "bad mode", cfg: Config{Listen: "unix:" + sock, SocketMode: "rw"}, wantErr: "--socket-mode"},
		{name: "unknown group", cfg: Config{Listen: "unix:" + sock, SocketGroup: "no-such-group-here"}, wantErr: "--socket-group"},
		{name: "bad allow-list", cfg: Config{Listen: "127.0.0.1:0", WebServerAddrs: "x"}, wantErr: "--web-server-addrs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = map[string]string{}
			}
			lns, err := openListeners(&tc.cfg, fakeEnv(env), hclog.NewNullLogger())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if _, serr := os.Stat(sock); serr == nil {
					t.Error("socket file left after a failed open")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range lns {
				got = append(got, l.Addr().Network())
				defer l.Close()
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("listeners %v, want %v", got, tc.want)
			}
			if tc.cfg.SocketMode != "" {
				if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
					t.Errorf("socket mode: %v %v, want 0600", st.Mode().Perm(), err)
				}
			}
		})
	}
}
