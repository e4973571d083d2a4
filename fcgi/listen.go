// This file holds Listen and ListenMode, which turn a listen address into a
// TCP or unix socket listener, replacing a stale unix socket file.

package fcgi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// Listen listens on addr: "host:port", "[::1]:port" or ":9000" for TCP;
// "unix:/path", or any address containing "/", for a unix socket.
//
// A unix socket file left behind by a dead process is replaced, but only
// when a connection to it is refused; a socket something still answers on,
// or a file that is not a socket, is an error. The listener removes the
// socket file when it is closed.
func Listen(addr string) (net.Listener, error) {
	return ListenMode(addr, 0o777)
}

// ListenMode is Listen, with a unix socket file made with the permissions
// mode, less the umask's, as any file is made, rather than 0777 less the
// umask's: the socket is never more open than mode, not even before its caller
// can chmod it. A TCP address ignores mode.
func ListenMode(addr string, mode os.FileMode) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return listenUnix(path, mode)
	}
	if strings.Contains(addr, "/") {
		return listenUnix(addr, mode)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fcgi: %w", err)
	}
	return l, nil
}

func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("fcgi: listen: empty unix socket path")
	}
	lc := net.ListenConfig{Control: presetMode(mode.Perm())}
	l, err := lc.Listen(context.Background(), "unix", path)
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) || strings.HasPrefix(path, "@") {
		return nil, fmt.Errorf("fcgi: %w", err)
	}
	fi, serr := os.Lstat(path)
	if serr != nil || fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("fcgi: %w", err)
	}
	c, derr := net.DialTimeout("unix", path, time.Second)
	if derr == nil {
		c.Close()
		return nil, fmt.Errorf("fcgi: listen %s: another process is serving on it: %w", path, err)
	}
	if !errors.Is(derr, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("fcgi: listen %s: socket file exists and probing it failed (%v): %w", path, derr, err)
	}
	// Nobody is listening: the file is stale.
	if rerr := os.Remove(path); rerr != nil && !os.IsNotExist(rerr) {
		return nil, fmt.Errorf("fcgi: remove stale socket: %w", rerr)
	}
	l, err = lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, fmt.Errorf("fcgi: %w", err)
	}
	return l, nil
}
