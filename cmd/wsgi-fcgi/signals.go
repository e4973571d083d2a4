//go:build linux

// signals.go: the signal loop of a running gateway. SIGHUP reloads the workers (new code, no
// failed request); SIGUSR1 reopens the log files; SIGQUIT exits at once; SIGTERM and SIGINT
// arrive as ctx (main) and hand back to run's graceful drain; the signals of nopsignals.go are
// logged as doing nothing.

package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// waitSignals serves signals until the gateway must stop. done is false when ctx ended
// (SIGTERM, SIGINT): the caller drains. done is true when the caller must return code now:
// the server failed, or SIGQUIT asked for a fast exit.
//
// A change a watcher sends on reloads (--reload, --touch-reload) reloads as SIGHUP does; one
// that comes during a reload waits for it to end, then reloads again.
//
// During the drain that follows, SIGHUP stays caught and is ignored (its default action would
// kill the gateway mid-drain), SIGUSR1 still reopens the logs, and SIGQUIT still cuts the
// drain short.
//
// sd hears of each reload: RELOADING=1 as it starts, READY=1 as it ends (failed or not).
//
// sigs is catchSignals's channel, made before the gateway says it listens.
func waitSignals(ctx context.Context, sigs chan os.Signal, served <-chan error, reloads <-chan reloadAsk, logs *logFiles, srv *fcgi.Server, pool *pyrunner.Pool, sd *notifier, log hclog.Logger) (code int, done bool) {
	var notes signalNotes // this goroutine's, then the drain's
	defer func() {
		if done {
			signal.Stop(sigs)
			return
		}
		go func() {
			for sig := range sigs {
				switch sig {
				case syscall.SIGQUIT:
					log.Warn("SIGQUIT while draining: cutting the running requests")
					srv.Close()
					pool.Close()
				case syscall.SIGUSR1:
					reopenLogs(logs, log)
				default:
					notes.note(sig, log)
				}
			}
		}()
	}()
	reloaded := make(chan error, 1)
	reloading := false
	var changed reloadAsk // a change a watcher saw during a reload
	reload := func() {
		reloading = true
		sd.reloadStarted()
		go func() { reloaded <- pool.Reload(ctx) }()
	}
	for {
		select {
		case err := <-served:
			log.Error("server stopped", "error", err)
			return exitFailed, true
		case <-ctx.Done():
			return exitOK, false
		case err := <-reloaded:
			// The pool logs the outcome, a failed import with its traceback: once, there. A
			// reload cut short by the shutdown is no news for systemd either.
			reloading = false
			if !errors.Is(err, context.Canceled) && !errors.Is(err, pyrunner.ErrClosed) {
				sd.reloadEnded(err)
			}
			if changed.file != "" {
				log.Info(changed.why+" during the reload; reloading again", "file", changed.file)
				changed = reloadAsk{}
				reload()
			}
		case ask := <-reloads:
			if reloading {
				changed = ask
				continue
			}
			log.Info(ask.why+"; reloading the app", "file", ask.file)
			reload()
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				if reloading {
					log.Warn("SIGHUP: a reload is already in progress; ignored")
					continue
				}
				log.Info("SIGHUP: reloading the app")
				reload()
			case syscall.SIGQUIT:
				log.Warn("SIGQUIT: exiting now; running requests are cut")
				srv.Close()
				pool.Close()
				return exitOK, true
			case syscall.SIGUSR1:
				reopenLogs(logs, log)
			default:
				notes.note(sig, log)
			}
		}
	}
}

// reopenLogs answers SIGUSR1: the log files are opened again by their names.
func reopenLogs(logs *logFiles, log hclog.Logger) {
	reopened, err := logs.reopen()
	if err != nil {
		log.Error("SIGUSR1: a log file could not be reopened; its log goes on in the old file", "error", err)
	}
	switch {
	case len(reopened) > 0:
		log.Info("SIGUSR1: log files reopened", "files", reopened)
	case err == nil:
		log.Info("SIGUSR1: no log file to reopen (no --log-file, and no --access-log file)")
	}
}

// catchSignals starts catching the signals waitSignals serves. It is called before the
// gateway logs that it listens: a signal sent from then on is served, not dropped (the Go
// runtime drops a SIGUSR1, SIGUSR2 or SIGWINCH no one catches).
func catchSignals() chan os.Signal {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, append(nopSignalList(), syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1)...)
	return sigs
}
