// Package testkit holds what the integration test packages (tests, tests/chaos) share: reading
// processes from /proc, and building the gateway binary they drive.
package testkit

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Stat is what the tests read from /proc/PID/stat.
type Stat struct {
	PID, PPID int
	State     byte
	Start     uint64 // starttime in clock ticks after boot: tells a pid's reuse apart
	Comm      string
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("short /proc/%d/stat: %q", pid, s)
	}
	ppid, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return Stat{PID: pid, PPID: ppid, State: f[0][0], Start: start, Comm: s[open+1 : end]}, nil
}

// Alive reports whether the process still exists (same start time) and is not a zombie.
func (p Stat) Alive() bool {
	now, err := ReadStat(p.PID)
	return err == nil && now.Start == p.Start && now.State != 'Z'
}

// Age is how long the process has run (/proc/uptime against its start; ticks are 1/100 s).
func (p Stat) Age() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	up, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return time.Duration((up - float64(p.Start)/100) * float64(time.Second))
}

// AllProcs lists every process in /proc.
func AllProcs() []Stat {
	entries, _ := os.ReadDir("/proc")
	var out []Stat
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if st, err := ReadStat(pid); err == nil {
				out = append(out, st)
			}
		}
	}
	return out
}

// Children lists the live (not zombie) children of ppid.
func Children(ppid int) []Stat {
	var out []Stat
	for _, p := range AllProcs() {
		if p.PPID == ppid && p.State != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// Descendants lists the live descendants of pid.
func Descendants(pid int) []Stat {
	procs := AllProcs()
	var out []Stat
	parents := map[int]bool{pid: true}
	for changed := true; changed; {
		changed = false
		for _, p := range procs {
			if parents[p.PPID] && !parents[p.PID] && p.State != 'Z' {
				parents[p.PID] = true
				out = append(out, p)
				changed = true
			}
		}
	}
	return out
}

// StatusField reads a field of /proc/PID/status as a number ("VmRSS" in KiB, "Threads").
func StatusField(pid int, field string) (int64, error) {
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
