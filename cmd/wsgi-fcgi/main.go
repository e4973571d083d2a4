//go:build linux

// main.go: the program: main maps run's outcome to an exit status; run wires the
// configuration, the pool, the gateway, the listeners and the signals together.

package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
	"github.com/wsgi-fcgi/wsgi-fcgi/gateway"
	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

//go:embed demo/wsgi_fcgi_demo.py
var demoApp []byte

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // a runtime failure
	exitConfig = 2 // bad settings, or an app or interpreter that cannot be loaded
)

func main() {
	// A SIGHUP or SIGTTIN before the signal loop runs (while the app imports) is caught and
	// dropped: SIGHUP's default action would kill the gateway, SIGTTIN's stop it. (The Go
	// runtime drops SIGUSR1, SIGUSR2 and SIGWINCH by itself.) Caught, not ignored: an ignored
	// signal would stay ignored in the workers started meanwhile.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP, syscall.SIGTTIN)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program: it returns the exit status. Cancelling ctx (SIGTERM, SIGINT)
// stops the gateway gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "probe":
			return runProbe(args[1:], stdout, stderr)
		case "version":
			fmt.Fprintln(stdout, versionLine())
			return exitOK
		case "help":
			if len(args) > 1 && args[1] == "probe" {
				return runProbe([]string{"--help"}, stdout, stderr)
			}
			args = []string{"--help"}
		}
	}
	cfg, err := loadConfig(args)
	switch {
	case errors.Is(err, errHelp):
		writeHelp(stdout, settings(cfg))
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
		return exitConfig
	case bool(cfg.showVersion):
		fmt.Fprintln(stdout, versionLine())
		return exitOK
	}
	// Started as a CGI program: one request, one worker (cgi.go).
	cgi := cgiInvoked(cfg, osCGIProbe)
	var workerEnv []string
	if cgi {
		useCGISettings(cfg)
		workerEnv = cgiWorkerEnv(os.Environ())
	}
	// Everything that can be checked is, before the app is imported.
	if err := checkBeforeStart(cfg, osListenEnv); err != nil {
		fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
		if cgi {
			writeCGIError(stdout, 500, "Internal Server Error")
		}
		return exitConfig
	}
	// A pid file that a running gateway holds stops this one (and only a start: a check of
	// the settings may run beside the gateway it checks). A CGI program has none: it is one
	// request among many at once.
	if reason := checkPIDFile(cfg.PIDFile, &osProcs); !cgi && reason != "" {
		fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", cfg.invalid("pid-file", reason))
		return exitConfig
	}
	logs := &logFiles{gatewayLog: stderr} // --check-config opens no file
	if !cfg.checkConfig {
		var err error
		if logs, err = openGatewayLog(cfg, stderr); err != nil {
			fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
			return exitConfig
		}
		defer logs.closeGatewayLog() // the last of run's defers: after the last log line
	}
	log := newLogger(cfg, logs.gatewayLog)
	batch := false
	if cfg.SchedBatch {
		var err error
		if batch, err = setBatchScheduling(); err != nil {
			log.Warn("the gateway stays under the normal scheduling policy", "error", err)
		}
	}
	var workerNice *int
	if cfg.Priority.Given {
		started, changed, err := setGatewayNice(cfg.Priority.Nice)
		if err != nil {
			log.Warn("the gateway keeps its priority", "nice", started, "want", cfg.Priority.Nice, "error", err)
		}
		if changed {
			workerNice = &started
		}
	}

	sd := newNotifier(os.Getenv, log.Named("systemd"))
	// Everything that needs root is done before --user takes effect: binding the sockets
	// (with their owner and mode), opening the access log and writing the pid file. Then the
	// gateway becomes the user, and only then does any Python start.
	logOut := stdout
	if cgi {
		logOut = stderr // stdout is the response
	}
	if !cfg.checkConfig { // --check-config opens no file
		if err := logs.openAccessLog(cfg, logOut); err != nil {
			fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
			return exitConfig
		}
		defer func() {
			if err := logs.closeAccess(); err != nil {
				log.Error("access log", "error", err)
			}
		}()
	}
	creds, err := resolveCredentials(cfg.User, cfg.Group, os.Geteuid(), os.Getegid(), osAccounts)
	if err != nil { // checked by checkBeforeStart
		fmt.Fprintf(stderr, "wsgi-fcgi: --user %s: %v\n", cfg.User, err)
		return exitConfig
	}
	var lns []listener
	var pid *pidFile
	defer func() {
		if err := pid.remove(); err != nil {
			log.Warn("the pid file stays behind", "error", err)
		}
	}()
	if creds != nil {
		if !cgi && !bool(cfg.checkConfig) { // a CGI program, or a check, has no listener and no pid file
			if lns, pid, err = bindListeners(cfg, log); err != nil {
				fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
				return exitFailed
			}
			defer closeListeners(lns) // the server has closed them when it served them
		}
		if err := creds.drop(); err != nil {
			fmt.Fprintf(stderr, "wsgi-fcgi: --user %s: %v\n", creds.name, err)
			return exitFailed
		}
		log.Info("running as", "user", creds.name, "uid", creds.uid, "gid", creds.gid, "groups", creds.groups)
		if err := checkAfterDrop(cfg, creds); err != nil {
			fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
			return exitConfig
		}
	}
	// As a CGI program, as with the other start warnings, none: it would be one per request.
	if w := rootWarning(cfg, os.Geteuid()); w != "" && !cgi {
		log.Warn(w)
	}

	demo := cfg.App == ""
	var pythonPath []string
	if cfg.PythonPath != "" {
		pythonPath = filepath.SplitList(cfg.PythonPath)
	}
	if demo {
		dir, err := os.MkdirTemp("", "wsgi-fcgi-demo-")
		if err != nil {
			fmt.Fprintf(stderr, "wsgi-fcgi: demo app: %v\n", err)
			return exitFailed
		}
		defer os.RemoveAll(dir)
		if err := os.WriteFile(filepath.Join(dir, "wsgi_fcgi_demo.py"), demoApp, 0o600); err != nil {
			fmt.Fprintf(stderr, "wsgi-fcgi: demo app: %v\n", err)
			return exitFailed
		}
		cfg.App = "wsgi_fcgi_demo:application"
		pythonPath = append(pythonPath, dir)
	}

	// As a CGI program the worker's start is the one interpreter start of the request: no
	// probe before it (its handshake tells the version; a failed start is answered below).
	if !cgi {
		python, err := pyrunner.Probe(cfg.Python)
		if err != nil {
			fmt.Fprintln(stderr, pythonError(cfg, err))
			return exitConfig
		}
		if cfg.checkConfig {
			return checkConfig(ctx, cfg, python, pythonPath, stdout, stderr, log)
		}
	}
	if workerEnv == nil {
		workerEnv = os.Environ() // after --user: its HOME, USER and LOGNAME
	}
	// Only the gateway speaks to systemd.
	workerEnv = withoutNotifySocket(workerEnv)
	pm, _ := pyrunner.ParseMode(cfg.PM) // checked by validate
	pool, err := pyrunner.New(pyrunner.Options{
		Python:            cfg.Python,
		App:               cfg.App,
		Name:              cfg.PoolName,
		Chdir:             cfg.Chdir,
		PythonPath:        pythonPath,
		Workers:           cfg.Workers,
		Mode:              pm,
		StartWorkers:      cfg.PMStart,
		MinSpare:          cfg.PMMinSpare,
		MaxSpare:          cfg.PMMaxSpare,
		IdleTimeout:       time.Duration(cfg.PMIdleTimeout),
		MaxRequests:       cfg.MaxRequests,
		MaxRequestsJitter: cfg.MaxRequestsJitter,
		MaxRSS:            int64(cfg.MaxRSS),
		Timeout:           time.Duration(cfg.Timeout),
		SlowTimeout:       time.Duration(cfg.SlowlogTimeout),
		SoftTimeout:       time.Duration(cfg.SoftTimeout),
		CancelGrace:       time.Duration(cfg.CancelGrace),
		Preload:           bool(cfg.Preload),
		Debug:             bool(cfg.Debug),
		RunOnce:           cgi,
		Env:               workerEnv,
		Threads:           cfg.Threads,
		QueueSize:         cfg.QueueSize,
		QueueTimeout:      time.Duration(cfg.QueueTimeout),
		NoSendAhead:       cfg.SendAhead == 0,
		SendAheadDepth:    int(cfg.SendAhead),
		NormalSched:       batch,
		WorkerNice:        workerNice,
		StartTimeout:      time.Duration(cfg.StartTimeout),
		TrackRequests:     cfg.StatusPath != "",
		Logger:            log.Named("pyrunner"),
	})
	if err != nil {
		fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
		return exitFailed
	}
	// The app is loaded before anything listens: a broken app or interpreter is one line and
	// exit status 2, and the web server never sees a half-started gateway.
	if err := pool.Start(ctx); err != nil {
		var le *pyrunner.LoadError
		if errors.As(err, &le) && le.Traceback != "" {
			log.Debug("app load failed", "traceback", le.Traceback)
		}
		fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
		if cgi {
			writeCGIError(stdout, 500, "Internal Server Error")
		}
		if errors.As(err, &le) || errors.Is(err, pyrunner.ErrNoPython) {
			return exitConfig
		}
		return exitFailed
	}
	defer pool.Close()

	trusted, _ := gateway.ParseTrustedProxies(cfg.ForwardedAllowIPs) // checked by validate
	gw := gateway.New(pool, gateway.Options{
		Mount:           cfg.Mount,
		MaxBody:         int64(cfg.MaxBody),
		TrustedProxies:  trusted,
		PingPath:        cfg.PingPath,
		StatusPath:      cfg.StatusPath,
		Status:          poolStatus{pool},
		PoolName:        cfg.PoolName,
		AccessLog:       logs.access,
		RequestIDHeader: bool(cfg.RequestIDHeader),
		Logger:          log.Named("gateway"),
	})
	if cgi {
		return serveCGI(ctx, cfg, gw, pool, stdout, stderr, log)
	}
	// The workers are up: from here a signal is served (by waitSignals), not dropped, and
	// that before the sockets accept, so that one sent by whoever sees them accept is too.
	sigs := catchSignals()
	if creds == nil {
		if lns, pid, err = bindListeners(cfg, log); err != nil {
			fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
			return exitFailed
		}
	}
	ln := lns[0].Listener
	st := startState{euid: os.Geteuid(), specAddrs: os.Getenv("FCGI_WEB_SERVER_ADDRS")}
	for _, l := range lns {
		st.listeners = append(st.listeners, l.Addr())
	}
	for _, w := range startWarnings(cfg, st) {
		log.Warn(w)
	}
	for _, w := range socketAccessWarnings(lns, osAccessEnv) {
		log.Warn(w)
	}
	stall := time.Duration(cfg.StallTimeout)
	if stall == 0 {
		stall = -1 // 0 means never here; fcgi.Server takes a negative
	}
	srv := &fcgi.Server{
		Handler:       gw,
		MaxConns:      cfg.MaxConns,
		MaxReqs:       cfg.MaxConcurrent,
		NoMultiplex:   bool(cfg.NoMultiplex),
		MaxParamsSize: int(cfg.MaxParams),
		StallTimeout:  stall,
		MaxSpool:      int64(cfg.MaxSpool),
		ConnError: func(remote net.Addr, err error) {
			log.Warn("connection closed", "remote", remote, "error", err)
		},
		Refused: gw.ServerRefused, // counted, logged once a second per cause, a 431 in the access log
	}
	served := make(chan error, 1)
	serveListeners(srv, lns, served)
	log.Info("listening", "addr", listenAddrs(lns), "app", cfg.App, "workers", cfg.Workers)
	if demo && cfg.HTTP == "" {
		cfg.HTTP = "127.0.0.1:8000"
	}
	var dev *devHTTP
	if cfg.HTTP != "" {
		if dev, err = startDevHTTP(cfg.HTTP, ln.Addr(), log.Named("http")); err != nil {
			fmt.Fprintf(stderr, "wsgi-fcgi: %v\n", err)
			srv.Close()
			return exitFailed
		}
		log.Info("development HTTP front end (not for production)", "url", dev.URL())
	}
	if demo {
		fmt.Fprintf(stderr, "\nServing the built-in demo app (no --app given) on FastCGI %s.\n"+
			"Open %s (the development HTTP front end, --http).\n"+
			"Point a web server at it, e.g. nginx:  location / { include fastcgi_params; fastcgi_pass %s; }\n"+
			"Your own app: wsgi-fcgi --app mypackage.wsgi:application --chdir /srv/site\n\n",
			ln.Addr(), dev.URL(), nginxAddr(ln.Addr().Network(), ln.Addr().String()))
	}

	reloads := startWatchers(ctx, bool(cfg.Reload), watchRoots(cfg.Chdir, pythonPath), cfg.TouchReload, log.Named("reload"))
	stopStatus := startNotifyStatus(ctx, sd, pool)
	code, done := waitSignals(ctx, sigs, served, reloads, logs, srv, pool, sd, log)
	stopStatus()
	sd.stopping()
	if done {
		return code
	}
	log.Info("shutting down: finishing running requests", "drain_timeout", formatDuration(time.Duration(cfg.DrainTimeout)))
	dctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.DrainTimeout))
	defer cancel()
	status := exitOK
	if dev != nil {
		if err := dev.shutdown(dctx); err != nil {
			log.Warn("development HTTP front end: requests still running at the drain timeout", "error", err)
		}
	}
	if err := srv.Shutdown(dctx); err != nil {
		log.Warn("requests still running at the drain timeout", "error", err)
		srv.Close()
	}
	if err := pool.Shutdown(dctx); err != nil {
		log.Warn("workers killed at the drain timeout", "error", err)
	}
	log.Info("stopped")
	return status
}

// bindListeners opens the listeners and then writes the pid file, whose pid is then one that
// listens. A stale pid file replaced is logged.
func bindListeners(cfg *Config, log hclog.Logger) ([]listener, *pidFile, error) {
	lns, err := openListeners(cfg, osListenEnv, log.Named("listen"))
	if err != nil {
		return nil, nil, err
	}
	if cfg.PIDFile == "" {
		return lns, nil, nil
	}
	pid, stale, err := writePIDFile(cfg.PIDFile, osProcs)
	if err != nil {
		closeListeners(lns)
		return nil, nil, err
	}
	if stale {
		log.Info("replaced a stale pid file: the process it named is gone", "pid_file", cfg.PIDFile)
	}
	return lns, pid, nil
}

// closeListeners closes every listener; closing one twice is harmless.
func closeListeners(lns []listener) {
	for _, l := range lns {
		l.Close()
	}
}

// nginxAddr writes a listen address as nginx's fastcgi_pass wants it.
func nginxAddr(network, addr string) string {
	if network == "unix" {
		return "unix:" + addr
	}
	return addr
}

// newLogger builds the root logger: text (coloured on a terminal) or JSON.
func newLogger(cfg *Config, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "wsgi-fcgi",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		Output:     w,
		JSONFormat: cfg.LogFormat == "json",
		Color:      hclog.AutoColor,
	})
}
