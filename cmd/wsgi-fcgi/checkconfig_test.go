//go:build linux

package main

import (
	"net"
	"path/filepath"
	"testing"
)

// TestServedNow: an address is served when something accepts connections on it, TCP or unix,
// however the unix path is written.
func TestServedNow(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	sock := filepath.Join(t.TempDir(), "gw.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{tl.Addr().String(), true},
		{freeAddr, false},
		{sock, true},
		{"unix:" + sock, true},
		{"unix:" + sock + ".none", false},
	} {
		if got := servedNow(tc.addr); got != tc.want {
			t.Errorf("servedNow(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
