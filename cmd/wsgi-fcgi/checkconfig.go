//go:build linux

// checkconfig.go: --check-config (-t), as nginx -t and php-fpm -t: the settings are read and
// checked as at a start (checks.go's trial listens included, but an address something
// already serves is no error: the gateway being checked), then the app is imported once in
// one worker, and one line says whether all is well. Nothing listens, and no log file is
// opened.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// servedNow reports whether something accepts connections on the listen address addr. Under
// --check-config an address in use is no error: the gateway being checked usually holds it.
func servedNow(addr string) bool {
	network, address := "tcp", addr
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address = "unix", path
	} else if strings.Contains(addr, "/") {
		network = "unix"
	}
	c, err := net.DialTimeout(network, address, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// checkStopTimeout is how long the worker checkConfig started may take to exit.
const checkStopTimeout = 5 * time.Second

// checkConfig imports cfg.App in one worker of python and returns the exit status: exitOK
// with "wsgi-fcgi: configuration ok: ..." on stdout, or exitConfig with the error on stderr.
// The settings have been checked already. log is for the traceback of a failed import, at
// debug level; the pool's own lines go to it only at --log-level debug or trace.
func checkConfig(ctx context.Context, cfg *Config, python pyrunner.Interpreter, pythonPath []string, stdout, stderr io.Writer, log hclog.Logger) int {
	poolLog := hclog.NewNullLogger()
	if log.IsDebug() {
		poolLog = log.Named("pyrunner")
	}
	pool, err := pyrunner.New(pyrunner.Options{
		Python:       cfg.Python,
		App:          cfg.App,
		Chdir:        cfg.Chdir,
		PythonPath:   pythonPath,
		Workers:      1,
		Mode:         pyrunner.Static,
		Threads:      1,
		StartTimeout: time.Duration(cfg.StartTimeout),
		Name:         cfg.PoolName,
		Env:          withoutNotifySocket(os.Environ()), // after --user: its HOME, USER and LOGNAME
		Logger:       poolLog,
	})
	if err == nil {
		// On error Start leaves nothing running; on success the idle worker is told to exit,
		// and killed if it has not within checkStopTimeout.
		if err = pool.Start(ctx); err == nil {
			sctx, cancel := context.WithTimeout(context.Background(), checkStopTimeout)
			pool.Shutdown(sctx)
			cancel()
		}
	}
	if err != nil {
		var le *pyrunner.LoadError
		if errors.As(err, &le) && le.Traceback != "" {
			log.Debug("app load failed", "traceback", le.Traceback)
		}
		fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
		return exitConfig
	}
	fmt.Fprintf(stdout, "wsgi-fcgi: configuration ok: app %s imported with %s (%s)\n", cfg.App, python.Path, python.Describe())
	return exitOK
}
