//go:build linux

// socketaccess.go: whether the web server can connect to the unix sockets the gateway made.
// A web server whose workers cannot connect answers 502 and the gateway, which never sees the
// attempt, says nothing; so at start the socket file and every directory above it are checked
// against the web server users of the machine, and one warning names the fix. Before that,
// whether the gateway's user may give its sockets the owner and group asked for.

package main

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// webServerUsers are the accounts web servers' workers run as, in the order the fix names
// them: Debian's and Ubuntu's nginx, Apache and Caddy (www-data; Caddy's own user is in its
// group), Fedora's and RHEL's nginx and Apache, Caddy's package, Arch's http.
var webServerUsers = []string{"www-data", "nginx", "apache", "caddy", "http"}

// account is a user of the machine, as permission checks see it.
type account struct {
	name  string
	uid   int
	group string // the primary group's name
	gids  []int  // the primary group and every supplementary group
}

// fileOwner is what a permission check needs of a file: its mode, owner and group.
type fileOwner struct {
	mode     os.FileMode
	uid, gid int
}

// accessEnv is what socketAccessWarning reads from the machine: a seam for tests.
type accessEnv struct {
	lookup func(name string) (account, bool) // a user by name; false when it does not exist
	stat   func(path string) (fileOwner, error)
	user   func(uid int) string // a user's name, or the uid as a number
	group  func(gid int) string // a group's name, or the gid as a number
}

// osAccessEnv reads the machine's user database and files.
var osAccessEnv = accessEnv{lookup: lookupAccount, stat: statOwner, user: userName, group: groupName}

func lookupAccount(name string) (account, bool) {
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, false
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return account{}, false
	}
	a := account{name: name, uid: uid}
	gid, _ := strconv.Atoi(u.Gid)
	a.gids = append(a.gids, gid)
	a.group = groupName(gid)
	ids, _ := u.GroupIds()
	for _, s := range ids {
		if g, err := strconv.Atoi(s); err == nil && g != gid {
			a.gids = append(a.gids, g)
		}
	}
	return a, true
}

func statOwner(path string) (fileOwner, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileOwner{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileOwner{}, fmt.Errorf("%s: no owner", path)
	}
	return fileOwner{mode: fi.Mode(), uid: int(st.Uid), gid: int(st.Gid)}, nil
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}

// allows reports whether a may use f with the permission bit want (the "other" bit: 1 to
// search, 2 to write), as the kernel decides without ACLs: the owner's bits for the owner,
// else the group's for a member of the file's group, else the others'.
func (f fileOwner) allows(a account, want os.FileMode) bool {
	perm := f.mode.Perm()
	switch {
	case a.uid == 0:
		return true
	case a.uid == f.uid:
		return perm&(want<<6) != 0
	case slices.Contains(a.gids, f.gid):
		return perm&(want<<3) != 0
	}
	return perm&want != 0
}

// Permission bits, as "other" bits.
const (
	permSearch os.FileMode = 0o1
	permWrite  os.FileMode = 0o2
)

// socketAccessWarnings returns a warning for each unix socket the gateway made (--listen)
// that every local user may connect to, or that none of the machine's web server users may
// connect to (none when the machine has no such user, or one of them may connect).
func socketAccessWarnings(lns []listener, env accessEnv) []string {
	var out []string
	for _, l := range lns {
		if l.origin != "--listen" || l.Addr().Network() != "unix" {
			continue
		}
		if w := socketAccessWarning(l.Addr().(*net.UnixAddr).Name, env); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// socketAccessWarning returns the warning for the socket file path, or "". To connect, a user
// needs search permission on every directory above the socket and write permission on it.
// A socket others may write to lets any local user send requests as the web server (php-fpm's
// CVE-2014-0185): that is said first.
func socketAccessWarning(path string, env accessEnv) string {
	if path == "" || strings.HasPrefix(path, "@") {
		return "" // Linux's abstract namespace: no file, no permissions
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	sock, err := env.stat(path)
	if err != nil {
		return ""
	}
	var users []account
	for _, name := range webServerUsers {
		if a, ok := env.lookup(name); ok {
			users = append(users, a)
		}
	}
	group := "www-data"
	if len(users) > 0 {
		group = users[0].group
	}
	if sock.mode.Perm()&0o002 != 0 {
		return fmt.Sprintf("unix socket %s is %04o: every local user may connect and send requests as the web server would; give the web server's group instead: --socket-group %s, and the default --socket-mode 0660",
			path, sock.mode.Perm(), group)
	}
	if len(users) == 0 {
		return ""
	}
	dirs, err := parentDirs(path, env.stat)
	if err != nil {
		return "" // cannot tell
	}
	var names []string
	blockedDir := -1 // the first directory that keeps a user out
	for _, a := range users {
		names = append(names, a.name)
		i := slices.IndexFunc(dirs, func(d dirOwner) bool { return !d.allows(a, permSearch) })
		if i < 0 && sock.allows(a, permWrite) {
			return ""
		}
		if i >= 0 && blockedDir < 0 {
			blockedDir = i
		}
	}
	who := strings.Join(names, ", ")
	if blockedDir >= 0 {
		d := dirs[blockedDir]
		return fmt.Sprintf("unix socket %s: the web server (%s) cannot connect, so it will answer 502: it may not search the directory %s (%04o %s:%s); put the socket in a directory it can reach, such as /run/wsgi-fcgi/ (mode 0755)",
			path, who, d.path, d.mode.Perm(), env.user(d.uid), env.group(d.gid))
	}
	fix := "--socket-group " + group
	if sock.mode.Perm()&0o020 == 0 {
		fix += " --socket-mode 0660"
	}
	return fmt.Sprintf("unix socket %s: the web server (%s) cannot connect, so it will answer 502: the socket is %04o %s:%s; start the gateway with %s",
		path, who, sock.mode.Perm(), env.user(sock.uid), env.group(sock.gid), fix)
}

// dirOwner is a directory above a socket, with its mode, owner and group.
type dirOwner struct {
	path string
	fileOwner
}

// parentDirs returns every directory above path, from the root down.
func parentDirs(path string, stat func(string) (fileOwner, error)) ([]dirOwner, error) {
	var out []dirOwner
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		fo, err := stat(d)
		if err != nil {
			return nil, err
		}
		out = append([]dirOwner{{d, fo}}, out...)
		if d == "/" || d == "." {
			return out, nil
		}
	}
}

// socketChownProblem returns the setting (socket-owner or socket-group) that a gateway running
// as euid, in the groups gids, may not give its unix sockets, and what it needs, or "", "".
// uid and gid are what was asked for, -1 for nothing; group is the group as it was named. As
// chown(2) allows it, root gives any owner and group; another user keeps the owner and gives
// only a group it is in.
func socketChownProblem(uid, gid int, group string, euid int, gids []int) (setting, want string) {
	switch {
	case euid == 0:
		return "", ""
	case uid >= 0 && uid != euid:
		return "socket-owner", fmt.Sprintf("the gateway's own user: only root gives a file to another user, and the gateway runs as uid %d", euid)
	case gid >= 0 && !slices.Contains(gids, gid):
		return "socket-group", fmt.Sprintf("a group the gateway's user is in: it runs as uid %d, which is not in the group %s (add it with usermod -aG %s USER, or start the gateway as root)", euid, group, group)
	}
	return "", ""
}

// hasUnixAddr reports whether a --listen address is a unix socket path.
func hasUnixAddr(listen string) bool {
	for _, a := range splitList(listen) {
		if strings.HasPrefix(a, "unix:") || strings.Contains(a, "/") {
			return true
		}
	}
	return false
}
