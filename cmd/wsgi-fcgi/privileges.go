//go:build linux

// privileges.go: --user and --group. Started as root, the gateway binds its sockets, sets
// their owner and mode, opens its log files and writes its pid file as root, then becomes
// the user (its group, and the user's supplementary groups, as initgroups(3) gives them)
// before any Python runs: the workers it starts afterwards inherit the user.

package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// credentials is who the gateway becomes: --user and --group, resolved.
type credentials struct {
	name   string // the user as the log names it: its name, or its uid
	uid    int
	gid    int
	groups []int  // supplementary groups
	home   string // the user's home directory ("/" for a uid with no passwd entry)
}

// accountDB is the account database the lookups read: a seam for tests. os/user reads
// /etc/passwd and /etc/group (or NSS, when built with cgo).
type accountDB struct {
	lookupUser   func(name string) (*user.User, error)
	lookupUserID func(uid string) (*user.User, error)
	lookupGroup  func(name string) (*user.Group, error)
	groupIDs     func(u *user.User) ([]string, error)
}

var osAccounts = accountDB{
	lookupUser:   user.Lookup,
	lookupUserID: user.LookupId,
	lookupGroup:  user.LookupGroup,
	groupIDs:     (*user.User).GroupIds,
}

// resolveCredentials resolves --user (a name or a uid) and --group (a name or a gid; the
// user's own group when empty) for a gateway whose effective ids are euid and egid. It
// returns nil when there is nothing to change: no --user, or a --user that names the user
// the gateway already runs as (and a --group naming its group). Only root may become
// another user.
func resolveCredentials(userName, groupName string, euid, egid int, db accountDB) (*credentials, error) {
	if userName == "" {
		return nil, nil // --group alone does nothing (a warning at start)
	}
	c := &credentials{name: userName, home: "/"}
	u, err := lookupUserSpec(userName, db)
	switch {
	case err == nil:
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
		c.name, c.home = u.Username, u.HomeDir
	case isUID(userName) && groupName != "":
		c.uid, _ = strconv.Atoi(userName) // a uid with no passwd entry, as containers have
	case isUID(userName):
		return nil, fmt.Errorf("uid %s has no entry in the user database: name its group with --group", userName)
	default:
		return nil, fmt.Errorf("no such user: %w", err)
	}
	primary := c.gid
	if groupName != "" {
		gid, err := lookupGroupID(groupName, db)
		if err != nil {
			return nil, &groupError{err}
		}
		c.gid = gid
	}
	if u != nil {
		ids, err := db.groupIDs(u)
		if err != nil {
			return nil, fmt.Errorf("groups of %s: %w", c.name, err)
		}
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && (g != primary || g == c.gid) {
				c.groups = append(c.groups, g) // initgroups(user, gid): the user's groups and gid, not the passwd group
			}
		}
	}
	if !slices.Contains(c.groups, c.gid) {
		c.groups = append([]int{c.gid}, c.groups...)
	}
	if euid != 0 {
		if c.uid != euid || (groupName != "" && c.gid != egid) {
			return nil, fmt.Errorf("%w: the gateway runs as uid %d, gid %d; start it as root, or leave --user and --group out", errNotRoot, euid, egid)
		}
		return nil, nil // already that user
	}
	return c, nil
}

// errNotRoot: --user or --group names another user or group, and the gateway is not root.
var errNotRoot = errors.New("only root can switch users")

// checkCredentials checks --user and --group against the account database and the user the
// gateway runs as.
func checkCredentials(c *Config, db accountDB) error {
	if c.Group != "" {
		if _, err := lookupGroupID(c.Group, db); err != nil {
			return c.invalid("group", "a group name or gid of this machine ("+errText(err)+")")
		}
	}
	_, err := resolveCredentials(c.User, c.Group, os.Geteuid(), os.Getegid(), db)
	var ge *groupError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNotRoot):
		return fmt.Errorf("--user %s: %w", c.User, err)
	case errors.As(err, &ge):
		return c.invalid("group", "a group name or gid of this machine ("+errText(err)+")")
	}
	return c.invalid("user", "a user name or uid of this machine ("+errText(err)+")")
}

// groupError is a --group that names no group.
type groupError struct{ err error }

func (e *groupError) Error() string { return "no such group: " + errText(e.err) }
func (e *groupError) Unwrap() error { return e.err }

// lookupUserSpec finds a user by name, or by uid when s is a number.
func lookupUserSpec(s string, db accountDB) (*user.User, error) {
	if isUID(s) {
		return db.lookupUserID(s)
	}
	return db.lookupUser(s)
}

// lookupGroupID takes a numeric gid as it is, or looks a group name up.
func lookupGroupID(s string, db accountDB) (int, error) {
	if isUID(s) {
		return strconv.Atoi(s)
	}
	g, err := db.lookupGroup(s)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

func isUID(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0
}

// drop makes the whole gateway process (every thread) the user c: supplementary groups,
// then the group, then the user, real, effective and saved alike, so that it cannot come
// back. HOME, USER and LOGNAME become the user's, as systemd's User= sets them, for the
// workers that inherit them. Root's capabilities go with its uid.
func (c *credentials) drop() error {
	if err := syscall.Setgroups(c.groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", c.groups, err)
	}
	if err := syscall.Setresgid(c.gid, c.gid, c.gid); err != nil {
		return fmt.Errorf("setgid %d: %w", c.gid, err)
	}
	if err := syscall.Setresuid(c.uid, c.uid, c.uid); err != nil {
		return fmt.Errorf("setuid %d: %w", c.uid, err)
	}
	ru, eu, su := unix.Getresuid()
	rg, eg, sg := unix.Getresgid()
	if ru != c.uid || eu != c.uid || su != c.uid || rg != c.gid || eg != c.gid || sg != c.gid {
		return fmt.Errorf("after the switch the gateway runs as uid %d/%d/%d gid %d/%d/%d, not %d:%d", ru, eu, su, rg, eg, sg, c.uid, c.gid)
	}
	for k, v := range map[string]string{"HOME": c.home, "USER": c.name, "LOGNAME": c.name} {
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("set %s: %w", k, err)
		}
	}
	return nil
}

// checkAfterDrop returns what the user can no longer reach that the gateway needs, or nil:
// the temp directory (the runner and spooled bodies go there) and --chdir.
func checkAfterDrop(c *Config, who *credentials) error {
	tmp := os.TempDir()
	if err := unix.Access(tmp, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("--user %s: the temp directory %s (TMPDIR) is not writable by that user (%s)", who.name, tmp, errText(err))
	}
	if c.Chdir != "" {
		if err := unix.Access(c.Chdir, unix.R_OK|unix.X_OK); err != nil {
			return fmt.Errorf("--user %s: --chdir %s cannot be read by that user (%s)", who.name, c.Chdir, errText(err))
		}
	}
	return nil
}
