//go:build linux

// worker.go: one Python worker process: spawning it, the handshake, log relay, and killing it.

package pyrunner

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Runner exit statuses (runner.py): the pool tells an app that cannot load from a crash.
const (
	exitChannel = 1 // the channel broke or a frame was malformed
	exitUsage   = 2 // started without the cookie or the channel
	exitAppLoad = 4 // the app cannot be loaded (a FATAL frame says why)
)

// process is one Python worker process. It serves Options.Threads channels, each a worker
// (a slot the pool hands out). Fields below the mark are guarded by the pool's mu.
type process struct {
	id     int
	gen    int // the pool generation (Reload) it belongs to
	pid    int
	cmd    *exec.Cmd   // nil for a process forked by a preload master
	handle *os.Process // to signal it
	dump   *os.File    // read end of the pipe the runner's faulthandler writes stacks to
	log    hclog.Logger
	slots  []*worker

	started  time.Time
	replaces int       // the pid of the process it replaces, for its start's log line (0: none)
	python   readyInfo // what its first READY said of the interpreter
	spawned  chan int  // preload: the pid from the master's SPAWNED (0: the master is gone)

	board     *board       // the cancel board it shares with the gateway
	owners    atomic.Int32 // its channels' owner goroutines still running; the last unmaps the board
	killOnce  sync.Once
	sigkilled atomic.Bool    // the pool sent it SIGKILL: such an exit is not the OOM killer's
	pipes     sync.WaitGroup // stdout/stderr relays; drained before Wait
	done      chan struct{}  // closed when the process has been reaped
	exitErr   error          // set before done is closed

	// Guarded by pool.mu.
	served       int // requests completed, all threads together
	maxRequests  int // recycle after this many (0: never); MaxRequests plus this process's jitter
	retiring     bool
	retireReason string
	killed       bool   // the pool killed it: its exit is no crash
	killReason   string // why, for its exit's log line
}

// worker is one channel of a process: what the pool hands requests to. Its owner goroutine
// (owner.go) alone uses conn, br, wbuf and the fields marked owner-only; the inbox is
// guarded by mu; state, queued and the send-ahead fields by the pool's mu.
type worker struct {
	id   int // the process's id
	ch   int // the channel's index in its process: its words on the cancel board
	pool *Pool
	p    *process
	conn *channel
	br   *bufio.Reader
	wbuf []byte // scratch for BODY frames
	log  hclog.Logger

	kick    chan struct{} // a request arrived, or the pool asked it to close, while idle
	serving atomic.Bool   // the owner serves a request: a poke goes through the read deadline

	mu     sync.Mutex
	inbox  []slot // the requests handed to it, in order: the first runs
	retire bool   // close the channel once the inbox is empty

	// Owner-only: the running request (owner.go).
	n                         uint32 // number of the last REQUEST written
	inPipe                    int    // bytes of REQUESTs written the worker may not have read
	cur                       *call  // the running call; nil for a ghost or once detached
	startedAt                 time.Time
	slowAt, softAt, killAt    time.Time
	resendAt                  time.Time
	started, stopped, skipped bool
	inlineReq, tracking       bool
	stopReason                uint32
	stoppedURI, stoppedID     string
	drained                   int

	// Guarded by the pool's mu.
	state      workerState
	idleSince  time.Time
	queued     int // calls in its inbox
	aheadable  bool
	aheadSince time.Time

	track reqTrack // with Options.TrackRequests, for Snapshot (status.go)
}

// ErrNoPython: the interpreter named in Options.Python does not exist.
var ErrNoPython = errors.New("python interpreter not found")

// LoadError is returned when the app cannot be loaded: the runner's one-line explanation
// and, when Python raised, its traceback.
type LoadError struct {
	App       string
	Message   string
	Traceback string
}

func (e *LoadError) Error() string { return e.Message }

// startProcess starts p's Python process, or has its generation's preload master fork it,
// and waits for READY on every channel.
func (pl *Pool) startProcess(p *process) error {
	if pl.opts.Preload {
		return pl.forkProcess(p)
	}
	return pl.execProcess(p)
}

// channels makes a process's channels (one per thread), its cancel board and its stack pipe;
// the child ends come first in files (two per channel: the pipe it reads, the pipe it
// writes), then the board, the stack pipe's write end last.
func (pl *Pool) channels(p *process) (files []*os.File, dumpR *os.File, err error) {
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
		for _, w := range p.slots {
			if w.conn != nil {
				w.conn.Close()
			}
		}
	}
	for _, w := range p.slots {
		conn, childR, childW, err := newChannel()
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		w.conn = conn
		w.br = bufio.NewReaderSize(channelReader{w}, 64<<10)
		files = append(files, childR, childW)
	}
	// The cancel board, shared by the process's channels.
	b, boardFile, err := newBoard(len(p.slots))
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	p.board = b
	files = append(files, boardFile)
	// The stack pipe: the runner's faulthandler writes the Python stack to it on SIGUSR1.
	dumpR, dumpW, err := os.Pipe()
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("stack pipe: %w", err)
	}
	return append(files, dumpW), dumpR, nil
}

// closeFiles closes the child ends once the child has them.
func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// closeChannels closes the gateway's ends of a process that did not start.
func (p *process) closeChannels() {
	for _, w := range p.slots {
		if w.conn != nil {
			w.conn.Close()
		}
	}
}

// execProcess starts p as a Python process of its own.
func (pl *Pool) execProcess(p *process) error {
	files, dumpR, err := pl.channels(p)
	if err != nil {
		return err
	}
	cmd := pl.runnerCommand(files, len(p.slots))
	stdout, stderr, err := pl.startCommand(cmd)
	closeFiles(files)
	if err != nil {
		p.closeChannels()
		p.board.release()
		dumpR.Close()
		return pl.startError(err)
	}
	p.pid = cmd.Process.Pid
	p.cmd = cmd
	p.handle = cmd.Process
	p.dump = dumpR
	p.init(pl)
	p.pipes.Add(2)
	go relay(p.log, &p.pipes, stdout, "stdout")
	go relay(p.log, &p.pipes, stderr, "stderr")
	go p.reap()
	return p.handshake(pl)
}

// init sets up a process that has started (its pid known), and logs its start.
func (p *process) init(pl *Pool) {
	p.started = time.Now()
	p.log = pl.log.With("worker", p.id, "pid", p.pid)
	msg := "worker started: importing the app"
	if pl.opts.Preload {
		msg = "worker started: forked by the preload master"
	}
	if p.replaces != 0 {
		p.log.Info(msg, "replaces", p.replaces)
	} else {
		p.log.Info(msg)
	}
	for i, w := range p.slots {
		w.log = p.log
		if len(p.slots) > 1 {
			w.log = p.log.With("thread", i)
		}
	}
}

// handshake waits for READY on every channel, then starts the channels' owner goroutines;
// on failure the process is killed and reaped.
func (p *process) handshake(pl *Pool) error {
	deadline := time.Now().Add(pl.opts.StartTimeout)
	for _, w := range p.slots {
		if err := w.handshake(time.Until(deadline), pl.opts.App, pl.stop); err != nil {
			p.kill()
			<-p.done
			p.board.release()
			return err
		}
	}
	p.owners.Store(int32(len(p.slots)))
	for _, w := range p.slots {
		w.kick = make(chan struct{}, 1)
		pl.wg.Add(1)
		go w.run()
	}
	return nil
}

// runnerBootstrap is the program the runner starts as (python3 -c): it reads the runner's
// source from the descriptor the gateway passes (%[1]d, %[2]d bytes), closes it and runs the
// source as the __main__ module. '<wsgi-fcgi runner>' is the name tracebacks and stack dumps
// show for the runner's frames (the angle brackets keep linecache from looking for a file of
// that name). __main__ gets no __file__: multiprocessing's spawn and forkserver children
// would try to run it as a path.
const runnerBootstrap = "import os;_runner_source=os.pread(%[1]d,%[2]d,0);os.close(%[1]d);" +
	"exec(compile(_runner_source,'<wsgi-fcgi runner>','exec'))"

// runnerCommand is the command line of the runner, given the descriptors it inherits (from
// fd 3): its channels (threads of them, two fds each; for a preload master, threads 0, its
// control socket), then its cancel board and its stack pipe. The runner's source follows them: an unlinked file,
// so that a gateway that dies leaves nothing behind on disk, even killed by SIGKILL.
func (p *Pool) runnerCommand(files []*os.File, threads int, extra ...string) *exec.Cmd {
	sourceFD := 3 + len(files)
	args := []string{"-c", fmt.Sprintf(runnerBootstrap, sourceFD, len(runnerSource)), "--app", p.opts.App}
	if p.opts.Chdir != "" {
		args = append(args, "--chdir", p.opts.Chdir)
	}
	if len(p.opts.PythonPath) > 0 {
		args = append(args, "--pythonpath", strings.Join(p.opts.PythonPath, string(os.PathListSeparator)))
	}
	if p.opts.Debug {
		args = append(args, "--debug")
	}
	if p.opts.RunOnce {
		args = append(args, "--run-once")
	}
	if p.opts.Name != "" {
		args = append(args, "--name", p.opts.Name)
	}
	cmd := exec.Command(p.opts.Python, append(args, extra...)...)
	cmd.ExtraFiles = append(append([]*os.File(nil), files...), p.source)
	// Each channel is two pipes, "R:W": the worker reads requests from fd R and writes
	// frames to fd W ("3:4", or "3:4,5:6,7:8" with --threads 3). A preload master gets its
	// control socket alone ("3").
	fds := "3"
	if threads > 0 {
		fds = ""
		for i := range threads {
			if i > 0 {
				fds += ","
			}
			fds += strconv.Itoa(3+2*i) + ":" + strconv.Itoa(4+2*i)
		}
	}
	cmd.Env = append(append([]string(nil), p.opts.Env...),
		"WSGI_FCGI_RUNNER_COOKIE="+runnerCookie,
		"WSGI_FCGI_RUNNER_FD="+fds,
		"PYTHONUNBUFFERED=1",
	)
	if threads > 0 {
		cmd.Env = append(cmd.Env,
			"WSGI_FCGI_RUNNER_BOARD_FD="+strconv.Itoa(3+2*threads),
			"WSGI_FCGI_RUNNER_STACK_FD="+strconv.Itoa(4+2*threads))
	}
	cmd.Dir = p.opts.Chdir
	// Own process group: a Ctrl-C on the terminal reaches the gateway, which drains the workers,
	// not the workers directly. Pdeathsig: no worker outlives the gateway.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// startCommand starts cmd with its stdout and stderr as pipes to relay, under the normal
// scheduling policy with Options.NormalSched and at Options.WorkerNice.
func (p *Pool) startCommand(cmd *exec.Cmd) (stdout, stderr io.ReadCloser, err error) {
	// On a failed Start, exec closes the pipes it made.
	stdout, err = cmd.StdoutPipe()
	if err == nil {
		stderr, err = cmd.StderrPipe()
	}
	if err == nil {
		err = cmd.Start()
	}
	if err == nil && p.opts.NormalSched {
		if serr := setNormalSched(cmd.Process.Pid); serr != nil {
			p.log.Warn("cannot put the worker under the normal scheduling policy", "pid", cmd.Process.Pid, "error", serr)
		}
	}
	if err == nil && p.opts.WorkerNice != nil {
		if serr := syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, *p.opts.WorkerNice); serr != nil {
			p.log.Warn("cannot set the worker's nice value", "pid", cmd.Process.Pid, "nice", *p.opts.WorkerNice, "error", serr)
		}
	}
	return stdout, stderr, err
}

func (p *Pool) startError(err error) error {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %q", ErrNoPython, p.opts.Python)
	}
	return fmt.Errorf("start python %q: %w", p.opts.Python, err)
}

// handshake waits for READY or FATAL, the process's exit, or the start timeout.
func (w *worker) handshake(timeout time.Duration, app string, stop <-chan struct{}) error {
	type result struct {
		h       frameHeader
		payload []byte
		err     error
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		var hdr [frameHeaderLen]byte
		if _, r.err = io.ReadFull(w.br, hdr[:]); r.err == nil {
			if r.h, r.err = parseFrameHeader(hdr[:]); r.err == nil {
				r.payload = make([]byte, min(r.h.length, 64<<10))
				_, r.err = io.ReadFull(w.br, r.payload)
			}
		}
		ch <- r
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		switch {
		case r.err != nil:
			<-w.p.done // the process is gone or going: its exit says more than EOF
			return w.p.exitError(app)
		case r.h.typ == frameReady:
			if w.ch == 0 {
				w.p.python = parseReady(r.payload)
			}
			return nil
		case r.h.typ == frameFatal:
			// PROTOCOL.md: the first line is the message, the rest the traceback.
			msg, tb, _ := strings.Cut(string(r.payload), "\n")
			return &LoadError{App: app, Message: strings.TrimSpace(msg), Traceback: strings.TrimSpace(tb)}
		default:
			return fmt.Errorf("worker %d: %w: %v frame before READY", w.id, errProtocol, r.h.typ)
		}
	case <-timer.C:
		if stack := w.p.dumpStack(); stack != "" {
			w.log.Error("worker did not start in time; its Python stack", "stack", stack)
		}
		return fmt.Errorf("worker %d did not load %q within %v (raise --start-timeout if the import is slow)", w.id, app, timeout)
	case <-stop:
		return ErrClosed
	}
}

// exitError describes why a process exited before it was ready.
func (p *process) exitError(app string) error {
	var ee interface{ ExitCode() int } // *exec.ExitError, or a preload master's report
	if errors.As(p.exitErr, &ee) {
		switch ee.ExitCode() {
		case exitAppLoad:
			return &LoadError{App: app, Message: fmt.Sprintf("cannot load %q (see the worker's log above)", app)}
		case exitUsage, exitChannel:
			return fmt.Errorf("worker %d could not start (exit status %d; see its log above)", p.id, ee.ExitCode())
		}
	}
	return fmt.Errorf("worker %d exited before it was ready: %v", p.id, p.exitErr)
}

// reap waits for the process after its output pipes are drained, then marks it done.
func (p *process) reap() {
	p.pipes.Wait()
	p.finish(p.cmd.Wait())
}

// finish marks the process as ended with err.
func (p *process) finish(err error) {
	p.exitErr = err
	p.closeChannels()
	p.dump.Close()
	close(p.done)
}

// kill ends the process at once; safe to call many times and after it exited.
func (p *process) kill() {
	p.killOnce.Do(func() {
		p.sigkilled.Store(true)
		p.handle.Signal(syscall.SIGKILL)
		p.closeChannels()
	})
}

// killAfter kills the process unless it exits within d.
func (p *process) killAfter(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.log.Warn("worker did not exit after its channel closed: killing it", "waited", d.String())
		p.kill()
	}
}
