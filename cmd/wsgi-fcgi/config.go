//go:build linux

// config.go: the settings, read from WSGI_FCGI_* environment variables (envconfig) and then
// from flags, which win.

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kelseyhightower/envconfig"

	"github.com/wsgi-fcgi/wsgi-fcgi/gateway"
	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// envPrefix: every setting NAME is also the environment variable WSGI_FCGI_NAME.
const envPrefix = "WSGI_FCGI"

// Config is every setting of the gateway. Field tags give the environment name (split_words:
// MaxBody → WSGI_FCGI_MAX_BODY) and the default; the flag of the same name is registered in
// bindFlags.
type Config struct {
	App               string        `envconfig:"APP"`
	Chdir             string        `envconfig:"CHDIR"`
	PythonPath        string        `envconfig:"PYTHONPATH"`
	Python            string        `envconfig:"PYTHON" default:"python3"`
	Workers           int           `envconfig:"WORKERS"`
	Listen            string        `envconfig:"LISTEN" default:"127.0.0.1:9000"`
	Mount             string        `envconfig:"MOUNT"`
	ForwardedAllowIPs string        `envconfig:"FORWARDED_ALLOW_IPS"`
	HTTP              string        `envconfig:"HTTP"`
	PingPath          string        `envconfig:"PING_PATH"`
	StatusPath        string        `envconfig:"STATUS_PATH"`
	PoolName          string        `envconfig:"POOL_NAME"`
	Reload            bool          `envconfig:"RELOAD"`
	AccessLog         string        `envconfig:"ACCESS_LOG"`
	AccessLogFormat   string        `envconfig:"ACCESS_LOG_FORMAT" default:"combined"`
	RequestIDHeader   bool          `envconfig:"REQUEST_ID_HEADER"`
	MaxBody           ByteSize      `envconfig:"MAX_BODY" default:"1GiB"`
	QueueSize         int           `envconfig:"QUEUE_SIZE" default:"1024"`
	QueueTimeout      time.Duration `envconfig:"QUEUE_TIMEOUT" default:"30s"`
	SendAhead         SendAhead     `envconfig:"SEND_AHEAD" default:"true"`
	SchedBatch        bool          `envconfig:"SCHED_BATCH"`
	Priority          Priority      `envconfig:"PRIORITY"`
	StartTimeout      time.Duration `envconfig:"START_TIMEOUT" default:"60s"`
	DrainTimeout      time.Duration `envconfig:"DRAIN_TIMEOUT" default:"30s"`
	PM                string        `envconfig:"PM" default:"static"`
	PMStart           int           `envconfig:"PM_START"`
	PMMinSpare        int           `envconfig:"PM_MIN_SPARE"`
	PMMaxSpare        int           `envconfig:"PM_MAX_SPARE"`
	PMIdleTimeout     time.Duration `envconfig:"PM_IDLE_TIMEOUT" default:"10s"`
	MaxRequests       int           `envconfig:"MAX_REQUESTS"`
	MaxRequestsJitter int           `envconfig:"MAX_REQUESTS_JITTER"`
	MaxRSS            ByteSize      `envconfig:"MAX_RSS"`
	Timeout           time.Duration `envconfig:"TIMEOUT"`
	SlowlogTimeout    time.Duration `envconfig:"SLOWLOG_TIMEOUT"`
	SoftTimeout       time.Duration `envconfig:"SOFT_TIMEOUT"`
	CancelGrace       time.Duration `envconfig:"CANCEL_GRACE" default:"5s"`
	Preload           bool          `envconfig:"PRELOAD"`
	Debug             bool          `envconfig:"DEBUG"`
	Threads           int           `envconfig:"THREADS" default:"1"`
	WebServerAddrs    string        `envconfig:"WEB_SERVER_ADDRS"`
	SocketMode        string        `envconfig:"SOCKET_MODE"`
	SocketOwner       string        `envconfig:"SOCKET_OWNER"`
	SocketGroup       string        `envconfig:"SOCKET_GROUP"`
	MaxConns          int           `envconfig:"MAX_CONNS" default:"1000"`
	MaxConcurrent     int           `envconfig:"MAX_CONCURRENT_REQUESTS" default:"1000"`
	NoMultiplex       bool          `envconfig:"NO_MULTIPLEX"`
	MaxParams         ByteSize      `envconfig:"MAX_PARAMS" default:"1MiB"`
	StallTimeout      time.Duration `envconfig:"STALL_TIMEOUT" default:"30s"`
	MaxSpool          ByteSize      `envconfig:"MAX_SPOOL" default:"1GiB"`
	LogFormat         string        `envconfig:"LOG_FORMAT" default:"text"`
	LogLevel          string        `envconfig:"LOG_LEVEL" default:"info"`

	showVersion bool
	listenSet   bool // --listen was given: served besides inherited sockets
}

// bindFlags registers a flag for every setting, its default the value read from the environment.
func bindFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.App, "app", c.App, "WSGI app as `module:callable` (\"module\" alone means callable \"application\"); none serves the built-in demo")
	fs.StringVar(&c.Chdir, "chdir", c.Chdir, "change to `DIR` before loading the app, and put DIR first on sys.path")
	fs.StringVar(&c.PythonPath, "pythonpath", c.PythonPath, "more `DIRS` (\":\"-separated) to put on sys.path")
	fs.StringVar(&c.Python, "python", c.Python, "Python interpreter to run the workers with, e.g. a virtualenv's bin/python")
	fs.IntVar(&c.Workers, "workers", c.Workers, "number of worker processes (default: the CPUs this process may use: its CPU affinity and its cgroup's CPU limit, rounded up)")
	fs.Var(listenFlag{c}, "listen", "FastCGI listen `ADDR`: host:port, [::1]:port, or a unix socket path (/run/app.sock or unix:PATH); repeat it or separate with commas for several. A socket inherited on fd 0 (mod_fcgid, spawn-fcgi) or from systemd (LISTEN_FDS) replaces the default")
	fs.StringVar(&c.Mount, "mount", c.Mount, "URL `PREFIX` the app is mounted at (SCRIPT_NAME), e.g. /app; default: derived from the web server's params")
	fs.StringVar(&c.HTTP, "http", c.HTTP, "also serve plain HTTP on `ADDR` (host:port) through the FastCGI listener, for development; the demo app turns it on at 127.0.0.1:8000")
	fs.StringVar(&c.PingPath, "ping-path", c.PingPath, "answer `PATH` (e.g. /fcgi-ping) with \"pong\" from the gateway itself, like php-fpm's ping.path")
	fs.StringVar(&c.StatusPath, "status-path", c.StatusPath, "answer `PATH` (e.g. /fcgi-status) with the status page, like php-fpm's pm.status_path: text, ?json (php-fpm's fields), ?openmetrics (Prometheus); ?full adds a row per worker")
	fs.StringVar(&c.PoolName, "pool-name", c.PoolName, "the pool's `NAME` on the status page (default wsgi-fcgi)")
	fs.BoolVar(&c.Reload, "reload", c.Reload, "development only: reload the workers when a .py file under --chdir or --pythonpath changes (checked every second)")
	fs.StringVar(&c.AccessLog, "access-log", c.AccessLog, "write an access log line per request to `FILE` (\"-\": standard output); off by default")
	fs.StringVar(&c.AccessLogFormat, "access-log-format", c.AccessLogFormat, "access log `FORMAT`: combined (Apache/nginx, plus the total time, the request id and the queue wait), json, json:FIELD,FIELD... or a template of {FIELD}s such as '{request_id} {status} {queue_wait}'")
	fs.BoolVar(&c.RequestIDHeader, "request-id-header", c.RequestIDHeader, "add X-Request-ID, the request's id (the web server's, or one generated), to every response")
	fs.StringVar(&c.ForwardedAllowIPs, "forwarded-allow-ips", c.ForwardedAllowIPs, "comma-separated `IPS` and CIDRs of proxies whose X-Forwarded-Proto/-For/-Host are believed (\"*\": any); default none")
	fs.Var(&c.MaxBody, "max-body", "largest request body accepted (413 above), e.g. 100MiB; 0 for no limit")
	fs.IntVar(&c.QueueSize, "queue-size", c.QueueSize, "requests that may wait for a free worker before 503")
	fs.DurationVar(&c.QueueTimeout, "queue-timeout", c.QueueTimeout, "longest wait for a free worker before 503")
	fs.Var(&c.SendAhead, "send-ahead", "static pool with every worker busy: send a request without a body to stream ahead to a worker whose request began less than 4 times the average request time ago (1ms to 10ms), so the worker finds it the moment it is done: true (2 per worker), a number of requests per worker (1 to 16), or false (it waits in the queue for an idle worker)")
	fs.BoolVar(&c.SchedBatch, "sched-batch", c.SchedBatch, "run the gateway's threads under SCHED_BATCH (Linux): its wake-ups do not preempt the workers, and it relays several records per wake-up; the workers keep the normal policy. Off by default: the gateway keeps the policy it was started with")
	fs.Var(&c.Priority, "priority", "nice `VALUE` (-20 to 19) of the gateway's threads, like nginx's worker_priority; the workers keep the one the gateway started with. Below that needs root or CAP_SYS_NICE; unset: unchanged")
	fs.DurationVar(&c.StartTimeout, "start-timeout", c.StartTimeout, "longest time a worker may take to import the app")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "on SIGTERM, how long running requests may take to finish")
	fs.StringVar(&c.PM, "pm", c.PM, "process manager (php-fpm's pm): static (--workers workers), dynamic (between --pm-min-spare and --pm-max-spare idle, at most --workers) or ondemand (started per request, stopped after --pm-idle-timeout idle)")
	fs.IntVar(&c.PMStart, "pm-start", c.PMStart, "dynamic: workers started at first (default: min spare plus half the gap to max spare)")
	fs.IntVar(&c.PMMinSpare, "pm-min-spare", c.PMMinSpare, "dynamic: fewest idle workers kept ready (default 1)")
	fs.IntVar(&c.PMMaxSpare, "pm-max-spare", c.PMMaxSpare, "dynamic: most idle workers kept; more are stopped, one a second (default: half of --workers)")
	fs.DurationVar(&c.PMIdleTimeout, "pm-idle-timeout", c.PMIdleTimeout, "ondemand: a worker idle this long exits")
	fs.IntVar(&c.MaxRequests, "max-requests", c.MaxRequests, "recycle a worker after this many requests; 0 never")
	fs.IntVar(&c.MaxRequestsJitter, "max-requests-jitter", c.MaxRequestsJitter, "add a random 0..`N` to --max-requests per worker, so workers do not all restart at once")
	fs.Var(&c.MaxRSS, "max-rss", "recycle a worker whose resident memory is above `SIZE`, e.g. 512MiB (checked every second, after its request); 0 no limit")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "hard limit on one request: past it the worker's Python stack is logged, the worker is killed and the client gets 504; 0 none")
	fs.DurationVar(&c.SoftTimeout, "soft-timeout", c.SoftTimeout, "interrupt a request that has run this long: the app gets a wsgi_fcgi.SoftTimeout exception, the client 504, and the worker serves on once the app has unwound (within --cancel-grace, else it is killed); 0 none")
	fs.DurationVar(&c.CancelGrace, "cancel-grace", c.CancelGrace, "how long an app may take to unwind once its request is cancelled (the web server gave up on it) or interrupted by --soft-timeout, before its worker is killed and replaced with its Python stack logged")
	fs.DurationVar(&c.SlowlogTimeout, "slowlog-timeout", c.SlowlogTimeout, "log the worker's Python stack once when a request has run this long, without stopping it; 0 never")
	fs.StringVar(&c.WebServerAddrs, "web-server-addrs", c.WebServerAddrs, "comma-separated `IPS` and CIDRs the web server connects from; TCP connections from elsewhere are closed and logged (default: FCGI_WEB_SERVER_ADDRS, else any)")
	fs.StringVar(&c.SocketMode, "socket-mode", c.SocketMode, "permissions of the unix socket files made by --listen, octal (e.g. 0660); default from the umask")
	fs.StringVar(&c.SocketOwner, "socket-owner", c.SocketOwner, "owner `USER` (name or uid) of the unix socket files made by --listen")
	fs.StringVar(&c.SocketGroup, "socket-group", c.SocketGroup, "`GROUP` (name or gid) of the unix socket files made by --listen, e.g. www-data")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "most FastCGI connections at once (FCGI_MAX_CONNS); the requests of one more are answered FCGI_OVERLOADED")
	fs.IntVar(&c.MaxConcurrent, "max-concurrent-requests", c.MaxConcurrent, "most FastCGI requests in progress at once, over all connections (FCGI_MAX_REQS); more are answered FCGI_OVERLOADED")
	fs.BoolVar(&c.NoMultiplex, "no-multiplex", c.NoMultiplex, "one request at a time per connection (FCGI_MPXS_CONNS=0; a second is answered FCGI_CANT_MPX_CONN)")
	fs.Var(&c.MaxParams, "max-params", "largest FastCGI params (CGI variables and headers) of one request, e.g. 64KiB; larger gets 431")
	fs.DurationVar(&c.StallTimeout, "stall-timeout", c.StallTimeout, "close a connection that stops this long in the middle of a FastCGI record; 0 never")
	fs.Var(&c.MaxSpool, "max-spool", "most unread body of one multiplexed request kept in a temp file")
	fs.IntVar(&c.Threads, "threads", c.Threads, "requests each worker process serves at once, one thread each (wsgi.multithread is true above 1)")
	fs.BoolVar(&c.Preload, "preload", c.Preload, "import the app once in a master process that forks the workers (shared memory, gc.freeze(), replacements without an import)")
	fs.BoolVar(&c.Debug, "debug", c.Debug, "development only: an app's traceback goes to the client in the 500 body as well as to the log")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: trace, debug, info, warn, error")
	fs.BoolVar(&c.showVersion, "version", false, "print the version and exit")
}

// errHelp: --help was asked for; usage has been printed.
var errHelp = errors.New("help requested")

// loadConfig reads the WSGI_FCGI_* environment variables, then the flags in args.
func loadConfig(args []string, stderr io.Writer) (*Config, error) {
	var c Config
	if err := envconfig.Process(envPrefix, &c); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	fs := flag.NewFlagSet("wsgi-fcgi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindFlags(fs, &c)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: wsgi-fcgi [flags]\n\nRuns a Python WSGI app in long-lived worker processes behind a FastCGI web server.\nEvery flag is also read from the environment as %s_<NAME> (--max-body: %s_MAX_BODY); a flag wins.\n\nFlags:\n", envPrefix, envPrefix)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (name the app with --app)", fs.Arg(0))
	}
	return &c, c.validate()
}

// validate checks the settings and fills the defaults that depend on the machine.
func (c *Config) validate() error {
	if c.Workers < 0 {
		return fmt.Errorf("--workers %d: must be at least 1", c.Workers)
	}
	if c.Workers == 0 {
		c.Workers = availableCPUs()
	}
	if c.Listen == "" {
		return errors.New("--listen: an address is required")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	if hclog.LevelFromString(c.LogLevel) == hclog.NoLevel {
		return fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", c.LogLevel)
	}
	if _, err := gateway.ParseAccessLogFormat(c.AccessLogFormat); err != nil {
		return fmt.Errorf("--access-log-format: %w", err)
	}
	if c.PingPath != "" && !strings.HasPrefix(c.PingPath, "/") {
		return fmt.Errorf("--ping-path %q: must start with /", c.PingPath)
	}
	if c.StatusPath != "" && !strings.HasPrefix(c.StatusPath, "/") {
		return fmt.Errorf("--status-path %q: must start with /", c.StatusPath)
	}
	if c.StatusPath != "" && c.StatusPath == c.PingPath {
		return fmt.Errorf("--status-path and --ping-path are both %q", c.StatusPath)
	}
	if _, err := gateway.ParseTrustedProxies(c.ForwardedAllowIPs); err != nil {
		return fmt.Errorf("--%w", err)
	}
	if _, err := pyrunner.ParseMode(c.PM); err != nil {
		return fmt.Errorf("--pm %q: want static, dynamic or ondemand", c.PM)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"pm-start", c.PMStart}, {"pm-min-spare", c.PMMinSpare}, {"pm-max-spare", c.PMMaxSpare}, {"max-requests", c.MaxRequests}, {"max-requests-jitter", c.MaxRequestsJitter}} {
		if v.n < 0 {
			return fmt.Errorf("--%s %d: must not be negative", v.name, v.n)
		}
	}
	if c.Threads < 1 || c.Threads > 256 {
		return fmt.Errorf("--threads %d: want 1 to 256", c.Threads)
	}
	if c.Preload && c.Threads > pyrunner.MaxPreloadThreads {
		// A preload master gets a worker's descriptors in one SCM_RIGHTS message (at most
		// 253 descriptors): two per channel and the stack pipe.
		return fmt.Errorf("--threads %d with --preload: want 1 to %d", c.Threads, pyrunner.MaxPreloadThreads)
	}
	if c.PMMinSpare > 0 && c.PMMaxSpare > 0 && c.PMMinSpare > c.PMMaxSpare {
		return fmt.Errorf("--pm-min-spare %d is above --pm-max-spare %d", c.PMMinSpare, c.PMMaxSpare)
	}
	if c.Timeout < 0 || c.SlowlogTimeout < 0 || c.PMIdleTimeout < 0 {
		return errors.New("--timeout, --slowlog-timeout and --pm-idle-timeout must not be negative")
	}
	if c.SoftTimeout < 0 || c.CancelGrace <= 0 {
		return errors.New("--soft-timeout must not be negative, --cancel-grace must be positive")
	}
	if c.MaxConns < 1 || c.MaxConcurrent < 1 || c.MaxParams < 1024 || c.MaxSpool < 1 || c.StallTimeout < 0 {
		return errors.New("--max-conns, --max-concurrent-requests and --max-spool must be at least 1, --max-params at least 1KiB, --stall-timeout not negative")
	}
	if c.QueueSize < 0 {
		return fmt.Errorf("--queue-size %d: must not be negative", c.QueueSize)
	}
	if c.Chdir != "" {
		abs, err := filepath.Abs(c.Chdir)
		if err != nil {
			return fmt.Errorf("--chdir %q: %w", c.Chdir, err)
		}
		if st, err := os.Stat(abs); err != nil || !st.IsDir() {
			return fmt.Errorf("--chdir %q: not a directory", c.Chdir)
		}
		c.Chdir = abs
	}
	if c.App != "" && strings.HasPrefix(c.App, ":") {
		return fmt.Errorf("--app %q: want module:callable", c.App)
	}
	return nil
}

// SendAhead is --send-ahead: how many requests may be sent ahead behind each worker's, 0 for
// none. It reads true (pyrunner.DefaultSendAheadDepth), false, or a number.
type SendAhead int

// Set parses s (flag.Value).
func (a *SendAhead) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on":
		*a = pyrunner.DefaultSendAheadDepth
		return nil
	case "false", "no", "off":
		*a = 0
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > pyrunner.MaxSendAheadDepth {
		return fmt.Errorf("invalid send-ahead %q (want true, false, or 0 to %d requests per worker)", s, pyrunner.MaxSendAheadDepth)
	}
	*a = SendAhead(n)
	return nil
}

// Decode parses s for envconfig.
func (a *SendAhead) Decode(s string) error { return a.Set(s) }

func (a *SendAhead) String() string {
	if *a == 0 {
		return "false"
	}
	return strconv.Itoa(int(*a))
}

// IsBoolFlag lets --send-ahead stand alone, meaning true.
func (a *SendAhead) IsBoolFlag() bool { return true }

// Priority is --priority: a nice value for the gateway's threads, or unset (the zero value)
// to leave the one it was started with.
type Priority struct {
	Nice  int
	Given bool
}

// Set parses s (flag.Value): a nice value from -20 to 19, or "" for unset.
func (p *Priority) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		*p = Priority{}
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < -20 || n > 19 {
		return fmt.Errorf("invalid priority %q (want a nice value from -20 to 19)", s)
	}
	*p = Priority{Nice: n, Given: true}
	return nil
}

// Decode parses s for envconfig.
func (p *Priority) Decode(s string) error { return p.Set(s) }

func (p *Priority) String() string {
	if !p.Given {
		return ""
	}
	return strconv.Itoa(p.Nice)
}

// ByteSize is a size in bytes written with an optional unit: 1048576, 512KiB, 100MiB, 1GiB,
// 10MB (decimal units are accepted too).
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// Set parses s (flag.Value).
func (b *ByteSize) Set(s string) error {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || (mult > 1 && n > math.MaxInt64/mult) {
		return fmt.Errorf("invalid size %q (want e.g. 1048576, 512KiB, 100MiB)", s)
	}
	*b = ByteSize(n * mult)
	return nil
}

// Decode parses s for envconfig.
func (b *ByteSize) Decode(s string) error { return b.Set(s) }

func (b *ByteSize) String() string {
	n := int64(*b)
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}
