//go:build unix

package fcgi

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestListenModeFromBind: a unix socket file is made with ListenMode's permissions (less the
// umask's), never 0777 first, and Listen keeps 0777 less the umask's.
func TestListenModeFromBind(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		name   string
		listen func(addr string) (net.Listener, error)
		want   os.FileMode
	}{
		{"ListenMode 0660", func(a string) (net.Listener, error) { return ListenMode(a, 0o660) }, 0o660},
		{"ListenMode 0600", func(a string) (net.Listener, error) { return ListenMode(a, 0o600) }, 0o600},
		{"Listen", Listen, 0o777},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".sock")
			l, err := tc.listen("unix:" + path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != tc.want {
				t.Errorf("socket file mode %v (%v), want %v", fi.Mode().Perm(), err, tc.want)
			}
		})
	}
}
