//go:build linux

package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestSocketAccessWarning: whether the web server users present may connect to a unix socket,
// decided from the socket's and its directories' mode, owner and group; the warning names the
// fix, and there is none when one of them may connect or none is present.
func TestSocketAccessWarning(t *testing.T) {
	wwwData := account{name: "www-data", uid: 33, group: "www-data", gids: []int{33}}
	nginx := account{name: "nginx", uid: 101, group: "nginx", gids: []int{101}}
	caddy := account{name: "caddy", uid: 999, group: "caddy", gids: []int{995}}
	caddyInWWW := account{name: "caddy", uid: 999, group: "caddy", gids: []int{995, 33}}
	const sock = "/run/wsgi-fcgi/gw.sock"
	open := map[string]fileOwner{
		"/":              {mode: os.ModeDir | 0o755},
		"/run":           {mode: os.ModeDir | 0o755},
		"/run/wsgi-fcgi": {mode: os.ModeDir | 0o755},
	}
	with := func(m map[string]fileOwner, path string, f fileOwner) map[string]fileOwner {
		out := map[string]fileOwner{path: f}
		for k, v := range m {
			if k != path {
				out[k] = v
			}
		}
		return out
	}
	socket := func(mode os.FileMode, uid, gid int) map[string]fileOwner {
		return with(open, sock, fileOwner{mode: os.ModeSocket | mode, uid: uid, gid: gid})
	}
	for _, tc := range []struct {
		name  string
		path  string // default sock
		users []account
		files map[string]fileOwner
		want  string // in the warning; "": no warning
	}{
		{name: "no web server user on the machine", files: socket(0o755, 0, 0)},
		{name: "umask mode, root's group", users: []account{wwwData}, files: socket(0o755, 0, 0),
			want: "the socket is 0755 root:root; start the gateway with --socket-group www-data --socket-mode 0660"},
		{name: "default mode, root's group", users: []account{wwwData}, files: socket(0o660, 0, 0),
			want: "the socket is 0660 root:root; start the gateway with --socket-group www-data"},
		{name: "the web server's group", users: []account{wwwData}, files: socket(0o660, 0, 33)},
		{name: "the web server's group without write", users: []account{wwwData}, files: socket(0o640, 0, 33),
			want: "start the gateway with --socket-group www-data --socket-mode 0660"},
		{name: "owned by the web server", users: []account{wwwData}, files: socket(0o600, 33, 0)},
		{name: "the owner may not write", users: []account{wwwData}, files: socket(0o060, 33, 0),
			want: "the socket is 0060 www-data:root"},
		{name: "anyone may connect", users: []account{wwwData}, files: socket(0o666, 0, 0),
			want: "unix socket /run/wsgi-fcgi/gw.sock is 0666: every local user may connect and send requests as the web server would; give the web server's group instead: --socket-group www-data"},
		{name: "anyone may connect, no web server user", files: socket(0o777, 0, 0),
			want: "is 0777: every local user may connect"},
		{name: "anyone may connect, nginx's group named", users: []account{nginx}, files: socket(0o666, 0, 101),
			want: "--socket-group nginx"},
		{name: "the gateway runs as the web server", users: []account{wwwData}, files: socket(0o660, 33, 33)},
		{name: "a directory the web server cannot search", users: []account{wwwData},
			files: with(socket(0o660, 0, 33), "/run/wsgi-fcgi", fileOwner{mode: os.ModeDir | 0o700}),
			want:  "it may not search the directory /run/wsgi-fcgi (0700 root:root)"},
		{name: "a directory the web server's group may search", users: []account{wwwData},
			files: with(socket(0o660, 0, 33), "/run/wsgi-fcgi", fileOwner{mode: os.ModeDir | 0o710, gid: 33})},
		{name: "a parent directory higher up", users: []account{wwwData},
			files: with(socket(0o660, 0, 33), "/run", fileOwner{mode: os.ModeDir | 0o750, uid: 1000, gid: 1000}),
			want:  "it may not search the directory /run (0750 1000:1000)"},
		{name: "Caddy's own user only", users: []account{caddy}, files: socket(0o660, 0, 33),
			want: "the web server (caddy) cannot connect"},
		{name: "Caddy's user in www-data's group", users: []account{caddyInWWW}, files: socket(0o660, 0, 33)},
		{name: "one of two web servers may connect", users: []account{wwwData, nginx}, files: socket(0o660, 0, 101)},
		{name: "neither of two", users: []account{wwwData, nginx}, files: socket(0o660, 0, 0),
			want: "the web server (www-data, nginx) cannot connect, so it will answer 502: the socket is 0660 root:root; start the gateway with --socket-group www-data"},
		{name: "nginx's group named when www-data is absent", users: []account{nginx}, files: socket(0o600, 0, 0),
			want: "--socket-group nginx --socket-mode 0660"},
		{name: "abstract socket", path: "@wsgi-fcgi", users: []account{wwwData}, files: socket(0o600, 0, 0)},
		{name: "socket file gone", path: "/run/wsgi-fcgi/other.sock", users: []account{wwwData}, files: socket(0o600, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := accessEnv{
				lookup: func(name string) (account, bool) {
					for _, a := range tc.users {
						if a.name == name {
							return a, true
						}
					}
					return account{}, false
				},
				stat: func(path string) (fileOwner, error) {
					if f, ok := tc.files[path]; ok {
						return f, nil
					}
					return fileOwner{}, errors.New("no such file")
				},
				user:  idName,
				group: idName,
			}
			path := tc.path
			if path == "" {
				path = sock
			}
			got := socketAccessWarning(path, env)
			switch {
			case tc.want == "" && got != "":
				t.Errorf("warning %q, want none", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("warning %q, want one containing %q", got, tc.want)
			}
		})
	}
}

// idName names ids 0 and 33 as Debian does, and any other by its number.
func idName(id int) string {
	if n, ok := map[int]string{0: "root", 33: "www-data"}[id]; ok {
		return n
	}
	return strconv.Itoa(id)
}

// TestDefaultSocketMode: a unix socket --listen makes is 0660 whatever the umask, as
// php-fpm's listen.mode: the gateway's user and group may connect, and nobody else.
func TestDefaultSocketMode(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "gw.sock")
	cfg, err := loadConfig([]string{"--listen", "unix:" + sock})
	if err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	lns, err := openListeners(cfg, fakeEnv(map[string]string{}), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lns {
		defer l.Close()
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v (%v), want 0660", st.Mode().Perm(), err)
	}
}

// TestSocketChownProblem: what chown(2) lets the gateway's user do with its socket's owner and
// group.
func TestSocketChownProblem(t *testing.T) {
	for _, tc := range []struct {
		name            string
		uid, gid, euid  int
		gids            []int
		setting, inWant string
	}{
		{name: "root, any owner and group", uid: 33, gid: 33, euid: 0},
		{name: "nothing asked", uid: -1, gid: -1, euid: 1000, gids: []int{1000}},
		{name: "a group the user is in", uid: -1, gid: 33, euid: 1000, gids: []int{1000, 33}},
		{name: "its own user", uid: 1000, gid: -1, euid: 1000, gids: []int{1000}},
		{name: "a group the user is not in", uid: -1, gid: 33, euid: 1000, gids: []int{1000},
			setting: "socket-group", inWant: "uid 1000, which is not in the group www-data (add it with usermod -aG www-data USER"},
		{name: "another owner", uid: 33, gid: -1, euid: 1000, gids: []int{1000},
			setting: "socket-owner", inWant: "only root gives a file to another user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setting, want := socketChownProblem(tc.uid, tc.gid, "www-data", tc.euid, tc.gids)
			if setting != tc.setting || !strings.Contains(want, tc.inWant) || (tc.inWant == "") != (want == "") {
				t.Errorf("got %q %q, want %q and %q", setting, want, tc.setting, tc.inWant)
			}
		})
	}
}
