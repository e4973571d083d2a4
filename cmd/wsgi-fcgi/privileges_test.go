//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeAccounts is an account database of two users and four groups.
func fakeAccounts() accountDB {
	users := []*user.User{
		{Uid: "1000", Gid: "1000", Username: "alice", HomeDir: "/home/alice"},
		{Uid: "33", Gid: "33", Username: "www-data", HomeDir: "/var/www"},
	}
	groups := []*user.Group{{Gid: "1000", Name: "alice"}, {Gid: "27", Name: "sudo"}, {Gid: "33", Name: "www-data"}, {Gid: "50", Name: "staff"}}
	member := map[string][]string{"alice": {"1000", "27", "33"}, "www-data": {"33"}}
	return accountDB{
		lookupUser: func(name string) (*user.User, error) {
			for _, u := range users {
				if u.Username == name {
					return u, nil
				}
			}
			return nil, user.UnknownUserError(name)
		},
		lookupUserID: func(uid string) (*user.User, error) {
			for _, u := range users {
				if u.Uid == uid {
					return u, nil
				}
			}
			n, _ := strconv.Atoi(uid)
			return nil, user.UnknownUserIdError(n)
		},
		lookupGroup: func(name string) (*user.Group, error) {
			for _, g := range groups {
				if g.Name == name {
					return g, nil
				}
			}
			return nil, user.UnknownGroupError(name)
		},
		groupIDs: func(u *user.User) ([]string, error) { return member[u.Username], nil },
	}
}

func TestResolveCredentials(t *testing.T) {
	for _, tc := range []struct {
		name        string
		user, group string
		euid, egid  int
		want        *credentials // nil: nothing to change
		wantErr     string
	}{
		{name: "no --user", euid: 0},
		{name: "--group alone", group: "staff", euid: 0},
		{name: "a user by name", user: "alice", euid: 0,
			want: &credentials{name: "alice", uid: 1000, gid: 1000, groups: []int{1000, 27, 33}, home: "/home/alice"}},
		{name: "a user by uid", user: "33", euid: 0,
			want: &credentials{name: "www-data", uid: 33, gid: 33, groups: []int{33}, home: "/var/www"}},
		{name: "another group: the passwd group is not kept", user: "alice", group: "staff", euid: 0,
			want: &credentials{name: "alice", uid: 1000, gid: 50, groups: []int{50, 27, 33}, home: "/home/alice"}},
		{name: "a group the user is in", user: "alice", group: "www-data", euid: 0,
			want: &credentials{name: "alice", uid: 1000, gid: 33, groups: []int{27, 33}, home: "/home/alice"}},
		{name: "a uid without an entry, with a gid", user: "5000", group: "5001", euid: 0,
			want: &credentials{name: "5000", uid: 5000, gid: 5001, groups: []int{5001}, home: "/"}},
		{name: "a uid without an entry, without a group", user: "5000", euid: 0, wantErr: "name its group with --group"},
		{name: "no such user", user: "mallory", euid: 0, wantErr: "no such user"},
		{name: "no such group", user: "alice", group: "wheel", euid: 0, wantErr: "no such group"},
		{name: "not root, naming itself", user: "alice", euid: 1000, egid: 1000},
		{name: "not root, naming itself and its group", user: "alice", group: "alice", euid: 1000, egid: 1000},
		{name: "not root, naming another user", user: "www-data", euid: 1000, egid: 1000, wantErr: "only root can switch users"},
		{name: "not root, naming another group", user: "alice", group: "staff", euid: 1000, egid: 1000, wantErr: "only root can switch users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveCredentials(tc.user, tc.group, tc.euid, tc.egid, fakeAccounts())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestCheckCredentials: a bad --user or --group is one line naming the setting; a non-root
// gateway naming another user is refused.
func TestCheckCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, user, group string
		want              string
	}{
		{name: "unknown user", user: "mallory", want: `--user "mallory" (WSGI_FCGI_USER): want a user name or uid of this machine`},
		{name: "unknown group", user: "alice", group: "wheel", want: `--group "wheel" (WSGI_FCGI_GROUP): want a group name or gid of this machine`},
		{name: "unknown group alone", group: "wheel", want: `--group "wheel"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearSettingsEnv(t)
			args := []string{}
			if tc.user != "" {
				args = append(args, "--user", tc.user)
			}
			if tc.group != "" {
				args = append(args, "--group", tc.group)
			}
			c, err := loadConfig(args)
			if err != nil {
				t.Fatal(err)
			}
			err = checkCredentials(c, fakeAccounts())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
	if os.Geteuid() != 0 {
		other := "root"
		c, _ := loadConfig([]string{"--user", other})
		if err := checkCredentials(c, osAccounts); !errors.Is(err, errNotRoot) {
			t.Errorf("not root, --user root: %v, want %v", err, errNotRoot)
		}
	}
}

// dropHelperEnv makes the test binary a helper process that drops to the credentials it
// names (uid:gid:group,group:dir), prints its ids, and checks dir as a --chdir.
const dropHelperEnv = "WSGI_FCGI_TEST_DROP_HELPER"

// TestDropHelperProcess is not a test: it is the helper process of TestDrop.
func TestDropHelperProcess(t *testing.T) {
	spec := os.Getenv(dropHelperEnv)
	if spec == "" {
		return // run by TestDrop only
	}
	f := strings.Split(spec, ":")
	uid, _ := strconv.Atoi(f[0])
	gid, _ := strconv.Atoi(f[1])
	var groups []int
	for _, g := range strings.Split(f[2], ",") {
		n, _ := strconv.Atoi(g)
		groups = append(groups, n)
	}
	c := &credentials{name: "nobody", uid: uid, gid: gid, groups: groups, home: "/nonexistent"}
	if err := c.drop(); err != nil {
		fmt.Println("drop:", err)
		os.Exit(1)
	}
	gs, _ := os.Getgroups()
	slices.Sort(gs)
	// Root's power is gone: it cannot come back.
	back := "no"
	if err := syscall.Setuid(0); err == nil {
		back = "yes"
	}
	fmt.Printf("uid=%d euid=%d gid=%d egid=%d groups=%v home=%s user=%s back=%s\n",
		os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), gs, os.Getenv("HOME"), os.Getenv("USER"), back)
	// What the user can no longer reach: a --chdir only root may enter.
	fmt.Printf("after the drop: %v\n", checkAfterDrop(&Config{Chdir: f[3]}, c))
	os.Exit(0)
}

// TestDrop: as root, a process that drops to nobody runs as nobody in every id, with the
// groups given, HOME and USER set, and cannot become root again.
func TestDrop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDropHelperProcess$")
	private := t.TempDir() // 0700, root's
	cmd.Env = append(os.Environ(), dropHelperEnv+"=65534:65534:65534,33:"+private, "TMPDIR=/tmp")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	want := "uid=65534 euid=65534 gid=65534 egid=65534 groups=[33 65534] home=/nonexistent user=nobody back=no"
	if !strings.Contains(string(out), want) {
		t.Errorf("helper says\n%s\nwant %s", out, want)
	}
	if want := "after the drop: --user nobody: --chdir " + private + " cannot be read by that user (permission denied)"; !strings.Contains(string(out), want) {
		t.Errorf("helper says\n%s\nwant %s", out, want)
	}
}
