//go:build integration

// Reading /proc: process trees, memory, and the sockets the gateway holds.

package tests

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStat is what the tests read from /proc/PID/stat.
type procStat struct {
	pid, ppid int
	state     byte
	start     uint64 // starttime in clock ticks: tells a pid's reuse apart
	comm      string
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("short /proc/%d/stat: %q", pid, s)
	}
	ppid, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return procStat{pid: pid, ppid: ppid, state: f[0][0], start: start, comm: s[open+1 : end]}, nil
}

// alive reports whether the process still exists (same start time) and is not a zombie.
func (p procStat) alive() bool {
	now, err := readStat(p.pid)
	return err == nil && now.start == p.start && now.state != 'Z'
}

// allProcs lists every process in /proc.
func allProcs() []procStat {
	entries, _ := os.ReadDir("/proc")
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// childrenOf lists the live (not zombie) children of ppid.
func childrenOf(ppid int) []procStat {
	var out []procStat
	for _, p := range allProcs() {
		if p.ppid == ppid && p.state != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// descendantsOf lists the live descendants of pid.
func descendantsOf(pid int) []procStat {
	procs := allProcs()
	var out []procStat
	parents := map[int]bool{pid: true}
	for changed := true; changed; {
		changed = false
		for _, p := range procs {
			if parents[p.ppid] && !parents[p.pid] && p.state != 'Z' {
				parents[p.pid] = true
				out = append(out, p)
				changed = true
			}
		}
	}
	return out
}

// statusKiB reads a "kB" field of /proc/PID/status (VmRSS, VmHWM).
func statusKiB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if ok && name == field {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// serverConns counts the connected server-side sockets of the unix socket at path: the
// FastCGI connections the gateway holds open (accepted sockets carry the listener's path in
// /proc/net/unix; "St" 03 is connected).
func serverConns(path string) (int, error) {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path
		if len(f) == 8 && f[5] == "03" && f[7] == path {
			n++
		}
	}
	return n, nil
}
