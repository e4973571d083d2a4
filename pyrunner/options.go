//go:build linux

// options.go: the pool's options, with their defaults, and its modes (php-fpm's pm).

package pyrunner

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Mode is how the pool sizes itself, in php-fpm's vocabulary.
type Mode uint8

const (
	// Static keeps Options.Workers workers running.
	Static Mode = iota
	// Dynamic starts Options.StartWorkers, keeps between MinSpare and MaxSpare idle workers,
	// and never runs more than Options.Workers.
	Dynamic
	// Ondemand runs no worker until a request comes, starts one per waiting request up to
	// Options.Workers, and stops a worker idle for longer than Options.IdleTimeout.
	Ondemand
)

func (m Mode) String() string {
	switch m {
	case Static:
		return "static"
	case Dynamic:
		return "dynamic"
	case Ondemand:
		return "ondemand"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// MarshalText writes the mode by name, as String does: in JSON logs too.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// ParseMode reads "static", "dynamic" or "ondemand".
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{Static, Dynamic, Ondemand} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("pool mode %q: want static, dynamic or ondemand", s)
}

// Options configure a Pool. Zero values take the defaults given per field.
type Options struct {
	// Python is the interpreter to run the workers with (default "python3" on PATH).
	Python string
	// App is "module:callable" or "module" (callable "application"), as gunicorn spells it.
	App string
	// Name names the app in the Python processes' titles, as ps shows them ("wsgi-fcgi:
	// worker [NAME]"; PROTOCOL.md, "Process titles"); default the module of App.
	Name string
	// Chdir is the workers' working directory, put first on sys.path.
	Chdir string
	// PythonPath lists more directories to put on sys.path, after Chdir.
	PythonPath []string
	// Mode sizes the pool (default Static).
	Mode Mode
	// Workers is the number of worker processes in Static mode, the most in the others
	// (default 1).
	Workers int
	// Threads is how many requests one process serves at once, each in a thread of its own
	// on a channel of its own (default 1). The pool counts the spare and busy capacity in
	// threads; it starts and stops whole processes.
	Threads int
	// StartWorkers is how many workers Dynamic mode starts with (default: MinSpare plus half
	// the gap to MaxSpare, as php-fpm).
	StartWorkers int
	// MinSpare and MaxSpare bound the idle workers in Dynamic mode (defaults 1 and
	// max(1, Workers/2)).
	MinSpare, MaxSpare int
	// IdleTimeout: in Ondemand mode a worker idle this long exits (default 10s).
	IdleTimeout time.Duration
	// MaxRequests recycles a worker after this many requests (0: never), plus a random
	// 0..MaxRequestsJitter per worker so that workers do not all restart at once.
	MaxRequests, MaxRequestsJitter int
	// MaxRSS recycles a worker whose resident memory is above this many bytes (0: no limit).
	// It is checked every second; a busy worker finishes its request first.
	MaxRSS int64
	// Timeout is the hard limit on one request (0: none): past it the worker's Python stack is
	// logged, the worker is killed and replaced, and Do returns an error wrapping ErrTimeout.
	Timeout time.Duration
	// SoftTimeout interrupts a request that has run this long (0: never): the app gets a
	// wsgi_fcgi.SoftTimeout exception in the request's thread, the client a 504 (or a cut
	// response), and the worker serves on once the app has unwound; Do returns an error
	// wrapping ErrTimeout.
	SoftTimeout time.Duration
	// CancelGrace is how long an app may take to unwind once its request is cancelled (the
	// web server gave up on it) or interrupted (SoftTimeout), before its worker is killed
	// and replaced, with its Python stack logged (default 5s).
	CancelGrace time.Duration
	// SlowTimeout logs the worker's Python stack once when a request has run this long,
	// without stopping it (0: never).
	SlowTimeout time.Duration
	// QueueSize bounds the requests waiting for a worker (default 1024).
	QueueSize int
	// QueueTimeout bounds how long a request waits for a worker (default 30s).
	QueueTimeout time.Duration
	// NoSendAhead keeps every request in the queue until a worker is idle, instead of sending
	// it ahead behind the request a busy worker is running (dispatch.go).
	NoSendAhead bool
	// SendAheadDepth is how many requests may be sent ahead behind one worker's request
	// (default DefaultSendAheadDepth, at most MaxSendAheadDepth).
	SendAheadDepth int
	// NormalSched starts every Python process under the normal scheduling policy
	// (SCHED_OTHER), whatever policy the gateway has: set when the gateway has put itself
	// under SCHED_BATCH (cmd/wsgi-fcgi, sched.go), which children inherit.
	NormalSched bool
	// WorkerNice, when set, is the nice value every Python process is given as it starts
	// (setpriority(2)): set when the gateway runs at another (cmd/wsgi-fcgi, --priority),
	// which children inherit. Raising a nice value needs no privilege.
	WorkerNice *int
	// Preload imports the app once in a master process that forks the workers (copy-on-write
	// memory, gc.freeze(); a replacement is ready without an import).
	Preload bool
	// Debug makes the runner put the app's traceback in the body of its 500 (it is logged
	// either way): for development only, as it shows the app's internals to the client.
	Debug bool
	// RunOnce tells the app it serves one request in the life of its process
	// (wsgi.run_once is True): set when the gateway runs as a CGI program.
	RunOnce bool
	// StartTimeout bounds a worker's start, import included (default 60s).
	StartTimeout time.Duration
	// Env is the workers' environment (default: the gateway's own).
	Env []string
	// TrackRequests keeps each worker's current request (Request.Info) and its own request
	// count for Snapshot's rows: a few stores per request (status.go).
	TrackRequests bool
	// Logger receives the pool's and the workers' log lines (default: discarded).
	Logger hclog.Logger
}

func (o *Options) fill() {
	if o.Python == "" {
		o.Python = "python3"
	}
	if !strings.Contains(o.Python, "/") {
		// The path exec would find, for the log lines that name the interpreter.
		if path, err := resolvePython(o.Python); err == nil {
			o.Python = path
		}
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Threads <= 0 {
		o.Threads = 1
	}
	if o.Preload {
		o.Threads = min(o.Threads, MaxPreloadThreads)
	}
	if o.MinSpare <= 0 {
		o.MinSpare = 1
	}
	if o.MaxSpare <= 0 {
		o.MaxSpare = max(1, o.Workers/2)
	}
	o.MaxSpare = min(max(o.MaxSpare, o.MinSpare), o.Workers)
	o.MinSpare = min(o.MinSpare, o.MaxSpare)
	if o.StartWorkers <= 0 {
		o.StartWorkers = o.MinSpare + (o.MaxSpare-o.MinSpare)/2
	}
	o.StartWorkers = min(max(o.StartWorkers, o.MinSpare), o.Workers)
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.SendAheadDepth <= 0 {
		o.SendAheadDepth = DefaultSendAheadDepth
	}
	o.SendAheadDepth = min(o.SendAheadDepth, MaxSendAheadDepth)
	if o.QueueTimeout <= 0 {
		o.QueueTimeout = 30 * time.Second
	}
	if o.CancelGrace <= 0 {
		o.CancelGrace = 5 * time.Second
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
}
