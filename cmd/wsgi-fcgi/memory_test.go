package main

import (
	"os"
	"testing"
)

func TestParseSmaps(t *testing.T) {
	data := []byte(`00400000-00741000 r-xp 00000000 fe:01 1234   /usr/bin/wsgi-fcgi
Size:               3332 kB
Rss:                3004 kB
Anonymous:             0 kB
00741000-00ab9000 r--p 00341000 fe:01 1234   /usr/bin/wsgi-fcgi
Rss:                2848 kB
Anonymous:             8 kB
3932c5400000-3932c6000000 rw-p 00000000 00:00 0 
Rss:                3740 kB
Anonymous:          3740 kB
7f0b28e7b000-7f0b28f9b000 r--p 00000000 fe:01 99   /opt/my app/lib.so (deleted)
Rss:                  12 kB
`)
	want := []mapping{
		{start: 0x400000, end: 0x741000, perms: "r-xp", path: "/usr/bin/wsgi-fcgi", rss: 3004 << 10},
		{start: 0x741000, end: 0xab9000, perms: "r--p", path: "/usr/bin/wsgi-fcgi", rss: 2848 << 10, anonymous: 8 << 10},
		{start: 0x3932c5400000, end: 0x3932c6000000, perms: "rw-p", rss: 3740 << 10, anonymous: 3740 << 10},
		{start: 0x7f0b28e7b000, end: 0x7f0b28f9b000, perms: "r--p", path: "/opt/my app/lib.so (deleted)", rss: 12 << 10},
	}
	got := parseSmaps(data)
	if len(got) != len(want) {
		t.Fatalf("got %d mappings, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestReleaseStartupPages: the test binary's own clean pages are released, and the code that
// runs next (this test's, the runtime's) maps them back as it needs them.
func TestReleaseStartupPages(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	resident := func() int64 {
		data, err := os.ReadFile("/proc/self/smaps")
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, m := range parseSmaps(data) {
			if m.path == exe && m.anonymous == 0 {
				n += m.rss
			}
		}
		return n
	}
	before := resident()
	released, err := releaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := resident()
	if released <= 0 || after >= before {
		t.Errorf("released %d bytes; the executable's clean pages went from %d to %d bytes", released, before, after)
	}
	// Everything still runs: parse again, allocate, format.
	if _, err := loadConfig([]string{"--workers", "3"}, os.Stderr); err != nil {
		t.Errorf("after the release: %v", err)
	}
}
