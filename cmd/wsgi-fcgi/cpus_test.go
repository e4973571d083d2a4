//go:build linux

package main

import (
	"testing"
	"testing/fstest"
)

// cgroupFS is a fake root file system: /proc/self/cgroup, /proc/self/mountinfo, and files.
func cgroupFS(self, mountinfo string, files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{
		"proc/self/cgroup":    {Data: []byte(self)},
		"proc/self/mountinfo": {Data: []byte(mountinfo)},
	}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return fsys
}

const (
	mountV2     = "30 22 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
	mountV1CPU  = "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
	mountV1Mem  = "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	mountHybrid = "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)

func TestCgroupCPULimit(t *testing.T) {
	cases := []struct {
		name        string
		self, mount string
		files       map[string]string
		limit       float64
		limited     bool
		wantErr     bool
	}{
		{name: "v2, container with its own namespace: 1.5 CPUs",
			self: "0::/\n", mount: mountV2,
			files: map[string]string{"sys/fs/cgroup/cpu.max": "150000 100000\n"},
			limit: 1.5, limited: true},
		{name: "v2, no quota",
			self: "0::/\n", mount: mountV2,
			files:   map[string]string{"sys/fs/cgroup/cpu.max": "max 100000\n"},
			limited: false},
		{name: "v2, the parent's limit applies to its child",
			self: "0::/system.slice/app.service\n", mount: mountV2,
			files: map[string]string{
				"sys/fs/cgroup/system.slice/cpu.max":             "50000 100000\n",
				"sys/fs/cgroup/system.slice/app.service/cpu.max": "max 100000\n",
			},
			limit: 0.5, limited: true},
		{name: "v2, the lowest of child and parent",
			self: "0::/a/b\n", mount: mountV2,
			files: map[string]string{
				"sys/fs/cgroup/a/cpu.max":   "400000 100000\n",
				"sys/fs/cgroup/a/b/cpu.max": "200000 100000\n",
			},
			limit: 2, limited: true},
		{name: "v2, root cgroup has no cpu.max",
			self: "0::/\n", mount: mountV2, limited: false},
		{name: "v1, docker without a cgroup namespace: 3 CPUs",
			self: "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n", mount: mountV1Mem + mountV1CPU,
			files: map[string]string{
				"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us":  "300000\n",
				"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
			},
			limit: 3, limited: true},
		{name: "v1, the mount's root is the process's cgroup",
			self:  "4:cpu,cpuacct:/docker/abc\n",
			mount: "31 30 0:28 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n",
			files: map[string]string{
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "50000\n",
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
			},
			limit: 0.5, limited: true},
		{name: "v1, no quota (-1)",
			self: "4:cpu,cpuacct:/\n", mount: mountV1CPU,
			files: map[string]string{
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "-1\n",
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
			},
			limited: false},
		{name: "hybrid: the v1 cpu controller limits, not the unified hierarchy",
			self: "4:cpu,cpuacct:/\n0::/\n", mount: mountV1CPU + mountHybrid,
			files: map[string]string{
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "100000\n",
				"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
				"sys/fs/cgroup/unified/cpu.max":               "800000 100000\n",
			},
			limit: 1, limited: true},
		{name: "malformed cpu.max",
			self: "0::/\n", mount: mountV2,
			files:   map[string]string{"sys/fs/cgroup/cpu.max": "lots\n"},
			wantErr: true},
		{name: "zero period",
			self: "0::/\n", mount: mountV2,
			files:   map[string]string{"sys/fs/cgroup/cpu.max": "100000 0\n"},
			wantErr: true},
		{name: "no cpu hierarchy",
			self: "5:memory:/\n", mount: mountV1Mem, wantErr: true},
		{name: "hierarchy not mounted",
			self: "0::/\n", mount: mountV1Mem, wantErr: true},
		{name: "cgroup outside the mount's root",
			self:    "4:cpu,cpuacct:/other\n",
			mount:   "31 30 0:28 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n",
			wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			limit, limited, err := cgroupCPULimit(cgroupFS(tc.self, tc.mount, tc.files))
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if limit != tc.limit || limited != tc.limited {
				t.Errorf("limit %v, limited %v; want %v, %v", limit, limited, tc.limit, tc.limited)
			}
		})
	}
	if _, _, err := cgroupCPULimit(fstest.MapFS{}); err == nil {
		t.Error("no /proc: no error")
	}
}

func TestAllowedCPUs(t *testing.T) {
	cases := []struct {
		name           string
		ncpu, affinity int
		limit          float64
		limited        bool
		want           int
	}{
		{"no limit", 8, 8, 0, false, 8},
		{"affinity unknown", 8, 0, 0, false, 8},
		{"taskset to two", 8, 2, 0, false, 2},
		{"1.5 CPUs rounds up", 8, 8, 1.5, true, 2},
		{"a tenth of a CPU is one", 8, 8, 0.1, true, 1},
		{"limit above the CPUs", 4, 4, 16, true, 4},
		{"affinity below the limit", 8, 3, 6, true, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := allowedCPUs(tc.ncpu, tc.affinity, tc.limit, tc.limited); got != tc.want {
				t.Errorf("allowedCPUs(%d, %d, %v, %v) = %d, want %d", tc.ncpu, tc.affinity, tc.limit, tc.limited, got, tc.want)
			}
		})
	}
}
