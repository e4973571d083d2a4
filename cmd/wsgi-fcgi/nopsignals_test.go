//go:build linux

package main

import (
	"bytes"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestSignalNotes: a signal that does nothing is logged at warn level each time it comes,
// SIGWINCH the first time only (then at debug level); a signal not in the table is not noted.
func TestSignalNotes(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	var n signalNotes
	for _, tc := range []struct {
		sig  os.Signal
		want string // "" for no line
	}{
		{syscall.SIGUSR2, "SIGUSR2 does nothing here; to reload the app gracefully (php-fpm's SIGUSR2), send SIGHUP"},
		{syscall.SIGUSR2, "SIGUSR2 does nothing here"},
		{syscall.SIGTTIN, "SIGTTIN does nothing here"},
		{syscall.SIGWINCH, "SIGWINCH does nothing here"},
		{syscall.SIGWINCH, ""},
		{syscall.SIGHUP, ""},
	} {
		buf.Reset()
		noted := n.note(tc.sig, log)
		if got := buf.String(); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) || (got != "" && !strings.Contains(got, "[WARN]")) {
			t.Errorf("%v: logged %q, want a warning with %q", tc.sig, got, tc.want)
		}
		if isNop := tc.sig != syscall.SIGHUP; noted != isNop {
			t.Errorf("%v: noted %v, want %v", tc.sig, noted, isNop)
		}
	}
	// None of them is a signal the runtime, job control or a debugger needs.
	for _, sig := range nopSignalList() {
		switch sig {
		case syscall.SIGTTOU, syscall.SIGTSTP, syscall.SIGCONT, syscall.SIGURG, syscall.SIGPIPE, syscall.SIGCHLD, syscall.SIGPROF, syscall.SIGTRAP:
			t.Errorf("%v is caught", sig)
		}
	}
}
