//go:build integration

// Reading /proc: the sockets the gateway holds (processes: tests/internal/testkit).

package tests

import (
	"os"
	"strings"
)

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
