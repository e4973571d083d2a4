//go:build linux

// settings.go: the list of settings. Each entry is a flag --name and the environment
// variable WSGI_FCGI_NAME (a field of Config with that envconfig tag), with its heading in
// --help, its placeholder and what it does. A new setting is a Config field and one entry
// here; docs/configuration.md documents it (docs_test.go checks), and settings_test.go's
// settingRows gives values it takes and refuses (TestEverySetting checks).

package main

// group is a heading of --help.
type group int

// The headings of --help, in their order.
const (
	groupApp group = iota
	groupListen
	groupWorkers
	groupLimits
	groupOps
	groupDev
	groupOther
)

func (g group) String() string {
	switch g {
	case groupApp:
		return "The app"
	case groupListen:
		return "Listeners"
	case groupWorkers:
		return "Workers and process management"
	case groupLimits:
		return "Limits and timeouts"
	case groupOps:
		return "Logging and operations"
	case groupDev:
		return "Development (not for production)"
	}
	return "Other"
}

// setting is one setting of the gateway.
type setting struct {
	name  string // the flag --name; the environment variable is WSGI_FCGI_NAME
	group group
	value any    // a pointer to the Config field (*string, *int, *Bool, *Duration, *ByteSize), or a settingValue
	arg   string // the placeholder in --help; a switch has none
	usage string // what it does, for --help
	// def is the default as --help shows it when the value is unset (empty, 0 or false): what
	// the gateway does then. Without it, --help shows the current value.
	def string
	// example is a valid value for the error a bad one gets (default: the kind's example).
	example string
	noEnv   bool // a command-line flag only
}

// Placeholders of --help for the kinds of value.
const (
	argDuration = "DURATION"
	argSize     = "SIZE"
	argN        = "N"
)

// settings is every setting, bound to c's fields.
func settings(c *Config) []setting {
	return []setting{
		{name: "app", group: groupApp, value: &c.App, arg: "MODULE:CALLABLE", example: "mysite.wsgi:application", def: "the built-in demo app", usage: "the WSGI app, as gunicorn spells it; MODULE alone means MODULE:application"},
		{name: "chdir", group: groupApp, value: &c.Chdir, arg: "DIR", example: "/srv/mysite", usage: "change to DIR before the app is imported, and put DIR first on sys.path"},
		{name: "pythonpath", group: groupApp, value: &c.PythonPath, arg: "DIRS", example: "/srv/lib:/srv/vendor", usage: "more directories for sys.path, separated by \":\""},
		{name: "python", group: groupApp, value: &c.Python, arg: "PYTHON", example: "/srv/venv/bin/python", usage: "the interpreter that runs the workers (CPython 3.8 or later), such as a virtualenv's bin/python; a name is looked up on PATH"},
		{name: "mount", group: groupApp, value: &c.Mount, arg: "PREFIX", example: "/app", def: "derived from the web server's params", usage: "the URL prefix the app lives under (SCRIPT_NAME)"},
		{name: "forwarded-allow-ips", group: groupApp, value: &c.ForwardedAllowIPs, arg: "IPS", example: "10.0.0.1,10.1.0.0/16", def: "none", usage: "comma-separated IPs and CIDRs of proxies whose X-Forwarded-Proto, -For and -Host are believed (\"*\": any)"},

		{name: "listen", group: groupListen, value: listenFlag{c}, arg: "ADDR", usage: "where FastCGI connections come in: host:port, [::1]:port, /path/to.sock or unix:PATH; repeat it, or separate with commas, for several. A socket inherited on fd 0 (mod_fcgid, spawn-fcgi) or from systemd (LISTEN_FDS) replaces the default"},
		{name: "socket-mode", group: groupListen, value: &c.SocketMode, arg: "MODE", example: "0660", usage: "permissions of the unix socket files --listen makes, in octal: the owner and the group may connect (give the group with --socket-group)"},
		{name: "socket-owner", group: groupListen, value: &c.SocketOwner, arg: "USER", example: "www-data", def: "the gateway's user", usage: "owner (name or uid) of the unix socket files --listen makes"},
		{name: "socket-group", group: groupListen, value: &c.SocketGroup, arg: "GROUP", example: "www-data", def: "the gateway's group", usage: "group (name or gid) of the unix socket files --listen makes"},
		{name: "web-server-addrs", group: groupListen, value: &c.WebServerAddrs, arg: "IPS", example: "127.0.0.1,10.0.0.0/8", def: "FCGI_WEB_SERVER_ADDRS, else any", usage: "comma-separated IPs and CIDRs TCP connections may come from; others are closed and logged"},
		{name: "no-multiplex", group: groupListen, value: &c.NoMultiplex, usage: "one request at a time per connection (FCGI_MPXS_CONNS=0; a second is answered FCGI_CANT_MPX_CONN)"},

		{name: "pm", group: groupWorkers, value: &c.PM, arg: "MODE", example: "dynamic", usage: "process manager, php-fpm's pm: static (--workers workers), dynamic (between --pm-min-spare and --pm-max-spare idle, at most --workers) or ondemand (started per request, stopped after --pm-idle-timeout idle)"},
		{name: "workers", group: groupWorkers, value: &c.Workers, arg: argN, def: "the CPUs the gateway may use, by its CPU affinity and cgroup limit", usage: "worker processes (static), or the most of them (dynamic, ondemand)"},
		{name: "pm-start", group: groupWorkers, value: &c.PMStart, arg: argN, example: "2", def: "min spare plus half the gap to max spare", usage: "dynamic: workers started at first"},
		{name: "pm-min-spare", group: groupWorkers, value: &c.PMMinSpare, arg: argN, example: "1", def: "1", usage: "dynamic: the fewest idle workers kept ready"},
		{name: "pm-max-spare", group: groupWorkers, value: &c.PMMaxSpare, arg: argN, example: "3", def: "half of --workers", usage: "dynamic: the most idle workers kept; more are stopped, one a second"},
		{name: "pm-idle-timeout", group: groupWorkers, value: &c.PMIdleTimeout, arg: argDuration, usage: "ondemand: a worker idle this long exits"},
		{name: "threads", group: groupWorkers, value: &c.Threads, arg: argN, example: "2", usage: "requests each worker process serves at once, a thread each (wsgi.multithread is true above 1); 1 to 256, at most 124 with --preload"},
		{name: "preload", group: groupWorkers, value: &c.Preload, usage: "import the app once in a master process that forks the workers (gc.freeze(), copy-on-write)"},
		{name: "max-requests", group: groupWorkers, value: &c.MaxRequests, arg: argN, example: "1000", def: "0, never", usage: "recycle a worker after this many requests"},
		{name: "max-requests-jitter", group: groupWorkers, value: &c.MaxRequestsJitter, arg: argN, example: "50", usage: "add a random 0 to N to --max-requests per worker, so they do not all restart at once"},
		{name: "max-rss", group: groupWorkers, value: &c.MaxRSS, arg: argSize, example: "512MiB", def: "0, no limit", usage: "recycle a worker whose resident memory is above SIZE, after its request; checked every second"},
		{name: "send-ahead", group: groupWorkers, value: &c.SendAhead, arg: argN, usage: "static pool with every worker busy: write a request (whose body fits in one frame) to a worker whose current request is young, so it finds the next one the moment it is done: true, a number of requests per worker (1 to 16), or false (requests wait in the queue for an idle worker)"},
		{name: "sched-batch", group: groupWorkers, value: &c.SchedBatch, usage: "run the gateway's threads under SCHED_BATCH: their wake-ups do not preempt the workers, which keep the normal policy. A gateway started under another policy (chrt) is left alone"},
		{name: "priority", group: groupWorkers, value: &c.Priority, arg: "NICE", def: "unchanged", usage: "nice value (-20 to 19) of the gateway's threads, like nginx's worker_priority; the workers keep the one the gateway started with. Below that needs root or CAP_SYS_NICE"},

		{name: "max-body", group: groupLimits, value: &c.MaxBody, arg: argSize, usage: "the largest request body; above it the client gets 413. 0: no limit"},
		{name: "queue-size", group: groupLimits, value: &c.QueueSize, arg: argN, example: "1024", usage: "requests that may wait for a free worker (queued or sent ahead); more get 503"},
		{name: "queue-timeout", group: groupLimits, value: &c.QueueTimeout, arg: argDuration, usage: "the longest wait for a free worker; then 503"},
		{name: "timeout", group: groupLimits, value: &c.Timeout, arg: argDuration, def: "0, none", usage: "hard limit on one request: the worker's Python stack is logged, the worker is killed and replaced, the client gets 504"},
		{name: "soft-timeout", group: groupLimits, value: &c.SoftTimeout, arg: argDuration, def: "0, none", usage: "interrupt a request that has run this long: the app gets wsgi_fcgi.SoftTimeout, the client 504, and the worker serves on once the app has unwound"},
		{name: "cancel-grace", group: groupLimits, value: &c.CancelGrace, arg: argDuration, usage: "how long an app may take to unwind once its request is cancelled or interrupted, before its worker is killed and replaced"},
		{name: "start-timeout", group: groupLimits, value: &c.StartTimeout, arg: argDuration, usage: "the longest a worker may take to import the app"},
		{name: "drain-timeout", group: groupLimits, value: &c.DrainTimeout, arg: argDuration, usage: "on SIGTERM or SIGINT, how long running requests may take to finish"},
		{name: "max-conns", group: groupLimits, value: &c.MaxConns, arg: argN, example: "1000", usage: "FastCGI connections at once (FCGI_MAX_CONNS); the requests of one more are answered FCGI_OVERLOADED"},
		{name: "max-concurrent-requests", group: groupLimits, value: &c.MaxConcurrent, arg: argN, example: "1000", usage: "FastCGI requests in progress at once over all connections (FCGI_MAX_REQS); more are answered FCGI_OVERLOADED"},
		{name: "max-params", group: groupLimits, value: &c.MaxParams, arg: argSize, example: "64KiB", usage: "the largest params (CGI variables and headers) of one request; larger gets 431. At least 1KiB"},
		{name: "stall-timeout", group: groupLimits, value: &c.StallTimeout, arg: argDuration, usage: "a connection stopped this long in the middle of a record is closed. 0: never"},
		{name: "max-spool", group: groupLimits, value: &c.MaxSpool, arg: argSize, usage: "the most unread body of one multiplexed request kept in a temp file"},

		{name: "log-level", group: groupOps, value: &c.LogLevel, arg: "LEVEL", example: "debug", usage: "trace, debug, info, warn or error"},
		{name: "log-format", group: groupOps, value: &c.LogFormat, arg: "FORMAT", example: "json", usage: "the gateway's log on standard error: text or json"},
		{name: "log-file", group: groupOps, value: &c.LogFile, arg: "FILE", example: "/var/log/wsgi-fcgi/error.log", def: "standard error", usage: "write the gateway's log, its workers' output included, to FILE (appended to) instead of standard error; SIGUSR1 reopens it"},
		{name: "access-log", group: groupOps, value: &c.AccessLog, arg: "FILE", example: "/var/log/wsgi-fcgi/access.log", def: "off", usage: "write a line per request to FILE (\"-\": standard output), flushed every second; SIGUSR1 reopens it (logrotate without copytruncate)"},
		{name: "access-log-format", group: groupOps, value: &c.AccessLogFormat, arg: "FORMAT", example: "json", usage: "combined (Apache/nginx, plus the total time, the request id and the queue wait), json, json:FIELD,FIELD... or a template of {FIELD}s such as '{request_id} {status} {queue_wait}'"},
		{name: "request-id-header", group: groupOps, value: &c.RequestIDHeader, usage: "add X-Request-ID, the request's id (the web server's, or one generated), to every response"},
		{name: "slowlog-timeout", group: groupOps, value: &c.SlowlogTimeout, arg: argDuration, def: "0, off", usage: "log the worker's Python stack once when a request has run this long; the request goes on (php-fpm's request_slowlog_timeout)"},
		{name: "status-path", group: groupOps, value: &c.StatusPath, arg: "PATH", example: "/fcgi-status", def: "off", usage: "answer PATH with the status page, like php-fpm's pm.status_path: text, ?json, ?openmetrics; ?full adds a row per worker"},
		{name: "ping-path", group: groupOps, value: &c.PingPath, arg: "PATH", example: "/fcgi-ping", def: "off", usage: "answer PATH with \"pong\" from the gateway itself, like php-fpm's ping.path"},
		{name: "user", group: groupOps, value: &c.User, arg: "USER", example: "www-data", def: "the user that starts it", usage: "started as root: bind the sockets, open the logs and write --pid-file, then run the gateway and its workers as USER (name or uid), with its groups"},
		{name: "group", group: groupOps, value: &c.Group, arg: "GROUP", example: "www-data", def: "the --user's group", usage: "with --user: the group (name or gid) the gateway and its workers run as"},
		{name: "pid-file", group: groupOps, value: &c.PIDFile, arg: "FILE", example: "/run/wsgi-fcgi/mysite.pid", def: "none", usage: "write the gateway's pid to FILE once it listens, and remove it at exit; a FILE naming a running wsgi-fcgi stops the start"},
		{name: "pool-name", group: groupOps, value: &c.PoolName, arg: "NAME", example: "mysite", def: "wsgi-fcgi", usage: "the pool's name on the status page, and in the Python processes' titles (ps) instead of the app's module"},
		{name: "touch-reload", group: groupOps, value: &c.TouchReload, arg: "FILE", example: "/srv/mysite/reload.txt", def: "off", usage: "reload the workers gracefully, as SIGHUP does, when FILE is touched, replaced or made (its time, size or inode changes); checked every second. FILE need not exist at start"},

		{name: "http", group: groupDev, value: &c.HTTP, arg: "ADDR", example: "127.0.0.1:8000", def: "off; 127.0.0.1:8000 for the demo app", usage: "also serve plain HTTP on host:port, passing each request as FastCGI to the gateway's own listener"},
		{name: "reload", group: groupDev, value: &c.Reload, usage: "reload the workers when a .py file under --chdir (else the working directory) or --pythonpath changes; checked every second"},
		{name: "debug", group: groupDev, value: &c.Debug, usage: "an app's traceback also goes to the client, in the body of the 500 (it is always logged)"},

		{name: "version", group: groupOther, value: &c.showVersion, noEnv: true, usage: "print the version the binary was built from and exit"},
		{name: "check-config", group: groupOther, value: &c.checkConfig, noEnv: true, usage: "check the settings and import the app once in one worker, listening nowhere; print one line and exit 0 when all is well, 2 otherwise (-t for short, as nginx -t)"},
	}
}
