package fcgi

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenAddresses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		addr, network string
	}{
		{"127.0.0.1:0", "tcp"},
		{":0", "tcp"},
		{"[::1]:0", "tcp"},
		{"unix:" + filepath.Join(dir, "a.sock"), "unix"},
		{filepath.Join(dir, "b.sock"), "unix"},
		{"unix:./c.sock", "unix"},
	}
	t.Chdir(dir)
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			l, err := Listen(tt.addr)
			if err != nil {
				if strings.Contains(tt.addr, "::1") {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			defer l.Close()
			if got := l.Addr().Network(); got != tt.network {
				t.Errorf("network %q, want %q", got, tt.network)
			}
		})
	}
}

func TestListenUnixSocketFile(t *testing.T) {
	dir := t.TempDir()

	t.Run("removed on close", func(t *testing.T) {
		path := filepath.Join(dir, "close.sock")
		l, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("socket file left behind: %v", err)
		}
	})

	t.Run("stale file replaced", func(t *testing.T) {
		path := filepath.Join(dir, "stale.sock")
		old, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		old.(*net.UnixListener).SetUnlinkOnClose(false)
		old.Close() // a dead process's socket file
		l, err := Listen("unix:" + path)
		if err != nil {
			t.Fatalf("stale socket not replaced: %v", err)
		}
		l.Close()
	})

	t.Run("live socket kept", func(t *testing.T) {
		path := filepath.Join(dir, "live.sock")
		live, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		if l, err := Listen(path); err == nil {
			l.Close()
			t.Fatal("Listen took over a live socket")
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("live socket broken: %v", err)
		}
		c.Close()
	})

	t.Run("regular file kept", func(t *testing.T) {
		path := filepath.Join(dir, "file.sock")
		if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
		if l, err := Listen(path); err == nil {
			l.Close()
			t.Fatal("Listen replaced a regular file")
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
			t.Errorf("file changed: %q %v", b, err)
		}
	})

	t.Run("empty path", func(t *testing.T) {
		if _, err := Listen("unix:"); err == nil {
			t.Error("empty path accepted")
		}
	})
}
