//go:build linux

// nopsignals.go: the signals the gateway catches only to say that they do nothing here,
// because another server gives them a meaning an operator may expect (php-fpm's SIGUSR2,
// gunicorn's SIGTTIN, nginx's SIGWINCH). Left alone, the Go runtime drops SIGUSR2 and
// SIGWINCH without a word, and SIGTTIN stops the gateway.
//
// Not caught: SIGTTOU (the kernel sends it to a background process that writes to a terminal
// set to tostop; caught, the write is retried and the signal sent again without end, where
// the default stops the process, as job control expects), SIGTSTP and SIGCONT (job control),
// SIGURG (the Go runtime's own preemption signal), SIGPIPE, SIGCHLD, SIGPROF and SIGTRAP
// (the runtime, os/exec, profilers and debuggers own them).

package main

import (
	"os"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// nopSignal is a signal the gateway catches only to log what it does not do.
type nopSignal struct {
	sig syscall.Signal
	msg string
	// once: log it the first time only, then at debug level (SIGWINCH comes with every
	// resize of the terminal the gateway runs in).
	once bool
}

// nopSignals is the table of them.
func nopSignals() []nopSignal {
	return []nopSignal{
		{sig: syscall.SIGUSR2, msg: "SIGUSR2 does nothing here; to reload the app gracefully (php-fpm's SIGUSR2), send SIGHUP"},
		{sig: syscall.SIGTTIN, msg: "SIGTTIN does nothing here: the gateway runs --workers workers (gunicorn's SIGTTIN adds one); --pm dynamic or ondemand follows the load"},
		{sig: syscall.SIGWINCH, msg: "SIGWINCH does nothing here (a terminal resized, or nginx's \"stop the workers\"); to stop the gateway gracefully, send SIGTERM", once: true},
	}
}

// nopSignalList is the signals of nopSignals, for signal.Notify.
func nopSignalList() []os.Signal {
	var sigs []os.Signal
	for _, n := range nopSignals() {
		sigs = append(sigs, n.sig)
	}
	return sigs
}

// signalNotes logs the signals that do nothing; it remembers which were logged. It belongs to
// the goroutine that reads the signals.
type signalNotes struct {
	seen map[os.Signal]bool
}

// note logs sig, if it is one of nopSignals, and reports whether it was.
func (n *signalNotes) note(sig os.Signal, log hclog.Logger) bool {
	for _, ns := range nopSignals() {
		if ns.sig != sig {
			continue
		}
		if n.seen == nil {
			n.seen = map[os.Signal]bool{}
		}
		if ns.once && n.seen[sig] {
			log.Debug(ns.msg)
		} else {
			log.Warn(ns.msg)
		}
		n.seen[sig] = true
		return true
	}
	return false
}
