//go:build linux

// cpus.go: the default of --workers, the CPUs this process may use: its CPU affinity and its
// cgroup's CPU limit, not the host's count.

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// availableCPUs is how many CPUs the gateway's workers may use: the CPU count, cut by the
// process's CPU affinity (taskset, cpusets) and by its cgroup's CPU limit (a container's
// --cpus, systemd's CPUQuota=), rounded up; at least 1. A cgroup that cannot be read counts as
// no limit.
func availableCPUs() int {
	affinity := 0
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		affinity = set.Count()
	}
	limit, limited, _ := cgroupCPULimit(os.DirFS("/"))
	return allowedCPUs(runtime.NumCPU(), affinity, limit, limited)
}

// allowedCPUs combines what availableCPUs found: ncpu CPUs, affinity of them in the affinity
// mask (0: unknown), and a cgroup limit of limit CPUs if limited.
func allowedCPUs(ncpu, affinity int, limit float64, limited bool) int {
	n := ncpu
	if affinity > 0 {
		n = min(n, affinity)
	}
	if limited {
		n = min(n, int(math.Ceil(limit)))
	}
	return max(1, n)
}

// cgroupCPULimit reads the CPU limit of the process's own cgroup from fsys (the root file
// system), in CPUs: the bandwidth quota over its period (cgroup v2 cpu.max; v1
// cpu.cfs_quota_us and cpu.cfs_period_us), the lowest of the cgroup's and each parent's up to
// the mount point, since each of them applies. limited is false when no level sets a limit.
// Where the v1 cpu controller is mounted (a hybrid hierarchy), it is the one that limits.
func cgroupCPULimit(fsys fs.FS) (limit float64, limited bool, err error) {
	self, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0, false, fmt.Errorf("cgroup of the process: %w", err)
	}
	mounts, err := fs.ReadFile(fsys, "proc/self/mountinfo")
	if err != nil {
		return 0, false, fmt.Errorf("cgroup mounts: %w", err)
	}
	cgPath, v1, err := cpuCgroup(string(self))
	if err != nil {
		return 0, false, err
	}
	mountPoint, dir, err := cgroupDir(string(mounts), cgPath, v1)
	if err != nil {
		return 0, false, err
	}
	for {
		l, ok, err := cpuQuota(fsys, dir, v1)
		if err != nil {
			return 0, false, err
		}
		if ok && (!limited || l < limit) {
			limit, limited = l, true
		}
		if dir == mountPoint || dir == "." {
			return limit, limited, nil
		}
		dir = path.Dir(dir)
	}
}

// cpuCgroup finds the process's cgroup that holds the CPU controller in /proc/self/cgroup
// ("hierarchy-ID:controllers:path" per line): the v1 hierarchy with "cpu" among its
// controllers, else the v2 one ("0::path").
func cpuCgroup(self string) (cgPath string, v1 bool, err error) {
	v2Path := ""
	for _, line := range strings.Split(strings.TrimSpace(self), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if slices.Contains(strings.Split(f[1], ","), "cpu") {
			return f[2], true, nil
		}
		if f[0] == "0" && f[1] == "" {
			v2Path = f[2]
		}
	}
	if v2Path == "" {
		return "", false, errors.New("no cpu cgroup in /proc/self/cgroup")
	}
	return v2Path, false, nil
}

// cgroupDir finds, in /proc/self/mountinfo, where the hierarchy of cgPath is mounted, and
// returns the mount point and the cgroup's directory under it, as paths of fsys (no leading
// slash). A mountinfo line: "ID parent major:minor root mount-point options... - fstype source
// super-options".
func cgroupDir(mountinfo, cgPath string, v1 bool) (mountPoint, dir string, err error) {
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 5 || len(f) < sep+4 {
			continue
		}
		fstype, superOpts := f[sep+1], f[sep+3]
		switch {
		case v1 && fstype == "cgroup" && slices.Contains(strings.Split(superOpts, ","), "cpu"):
		case !v1 && fstype == "cgroup2":
		default:
			continue
		}
		root, mp := f[3], f[4]
		rel, ok := strings.CutPrefix(cgPath, root)
		if root == "/" {
			rel, ok = cgPath, true
		} else if ok && rel != "" && !strings.HasPrefix(rel, "/") {
			ok = false // root /a is not a parent of /ab
		}
		if !ok {
			return "", "", fmt.Errorf("cgroup %s is not under its hierarchy's mount (root %s at %s)", cgPath, root, mp)
		}
		mountPoint = strings.TrimPrefix(path.Clean(mp), "/")
		return mountPoint, strings.TrimPrefix(path.Join(mp, rel), "/"), nil
	}
	return "", "", fmt.Errorf("cgroup hierarchy of %s not mounted", cgPath)
}

// cpuQuota reads the CPU limit set in one cgroup directory, in CPUs; ok is false when it sets
// none (no file, as in a root cgroup, or no quota).
func cpuQuota(fsys fs.FS, dir string, v1 bool) (cpus float64, ok bool, err error) {
	var quota, period string
	if v1 {
		if quota, err = readCgroupFile(fsys, dir, "cpu.cfs_quota_us"); err != nil || quota == "" {
			return 0, false, err
		}
		if period, err = readCgroupFile(fsys, dir, "cpu.cfs_period_us"); err != nil || period == "" {
			return 0, false, err
		}
	} else {
		max, err := readCgroupFile(fsys, dir, "cpu.max") // "QUOTA PERIOD" or "max PERIOD"
		if err != nil || max == "" {
			return 0, false, err
		}
		var found bool
		if quota, period, found = strings.Cut(max, " "); !found {
			return 0, false, fmt.Errorf("%s/cpu.max: %q is not \"quota period\"", dir, max)
		}
	}
	if quota == "max" || quota == "-1" {
		return 0, false, nil
	}
	q, err1 := strconv.ParseInt(quota, 10, 64)
	p, err2 := strconv.ParseInt(period, 10, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0, false, fmt.Errorf("%s: CPU quota %q over period %q: not two positive numbers", dir, quota, period)
	}
	return float64(q) / float64(p), true, nil
}

// readCgroupFile returns the trimmed content of dir/name, or "" when there is no such file.
func readCgroupFile(fsys fs.FS, dir, name string) (string, error) {
	b, err := fs.ReadFile(fsys, path.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read cgroup file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
