// worker.go: one Python worker process: spawning it, the handshake, log relay, and killing it.

package pyrunner

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
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

// worker owns one Python process and its end of the channel. Only the goroutine that holds
// the worker (the pool's idle list hands it out) uses conn, br and wbuf.
type worker struct {
	id   int
	pid  int
	cmd  *exec.Cmd
	conn *net.UnixConn
	br   *bufio.Reader
	wbuf []byte // scratch for BODY frames
	log  hclog.Logger

	started time.Time
	served  int // requests completed; touched only by the holder

	killOnce sync.Once
	pipes    sync.WaitGroup // stdout/stderr relays; drained before Wait
	done     chan struct{}  // closed when the process has been reaped
	exitErr  error          // set before done is closed
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

// startWorker starts a Python process and waits for its READY frame.
func (p *Pool) startWorker(id int) (*worker, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	parentFile := os.NewFile(uintptr(fds[0]), "wsgi-fcgi-channel")
	childFile := os.NewFile(uintptr(fds[1]), "wsgi-fcgi-channel-child")
	fc, err := net.FileConn(parentFile)
	parentFile.Close()
	if err != nil {
		childFile.Close()
		return nil, fmt.Errorf("channel: %w", err)
	}

	args := []string{p.script, "--app", p.opts.App}
	if p.opts.Chdir != "" {
		args = append(args, "--chdir", p.opts.Chdir)
	}
	if len(p.opts.PythonPath) > 0 {
		args = append(args, "--pythonpath", strings.Join(p.opts.PythonPath, string(os.PathListSeparator)))
	}
	cmd := exec.Command(p.opts.Python, args...)
	cmd.Env = append(append([]string(nil), p.opts.Env...),
		"WSGI_FCGI_RUNNER_COOKIE="+runnerCookie,
		"WSGI_FCGI_RUNNER_FD=3",
		"PYTHONUNBUFFERED=1",
	)
	cmd.Dir = p.opts.Chdir
	cmd.ExtraFiles = []*os.File{childFile}
	// Own process group: a Ctrl-C on the terminal reaches the gateway, which drains the workers,
	// not the workers directly. Pdeathsig: no worker outlives the gateway.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// On a failed Start, exec closes the pipes it made.
	stdout, err := cmd.StdoutPipe()
	var stderr io.ReadCloser
	if err == nil {
		stderr, err = cmd.StderrPipe()
	}
	if err == nil {
		err = cmd.Start()
	}
	childFile.Close()
	if err != nil {
		fc.Close()
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %q", ErrNoPython, p.opts.Python)
		}
		return nil, fmt.Errorf("start python %q: %w", p.opts.Python, err)
	}
	w := &worker{
		id:      id,
		pid:     cmd.Process.Pid,
		cmd:     cmd,
		conn:    fc.(*net.UnixConn),
		br:      bufio.NewReaderSize(fc, 64<<10),
		started: time.Now(),
		done:    make(chan struct{}),
	}
	w.log = p.log.With("worker", id, "pid", w.pid)
	w.pipes.Add(2)
	go w.relay(stdout, "stdout")
	go w.relay(stderr, "stderr")
	go w.reap()
	if err := w.handshake(p.opts.StartTimeout, p.opts.App); err != nil {
		w.kill()
		<-w.done
		return nil, err
	}
	return w, nil
}

// handshake waits for READY or FATAL, the process's exit, or the start timeout.
func (w *worker) handshake(timeout time.Duration, app string) error {
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
			<-w.done // the process is gone or going: its exit says more than EOF
			return w.exitError(app)
		case r.h.typ == frameReady:
			w.log.Debug("worker ready", "info", string(r.payload))
			return nil
		case r.h.typ == frameFatal:
			// PROTOCOL.md: the first line is the message, the rest the traceback.
			msg, tb, _ := strings.Cut(string(r.payload), "\n")
			return &LoadError{App: app, Message: strings.TrimSpace(msg), Traceback: strings.TrimSpace(tb)}
		default:
			return fmt.Errorf("worker %d: %w: %v frame before READY", w.id, errProtocol, r.h.typ)
		}
	case <-timer.C:
		return fmt.Errorf("worker %d did not load %q within %v (raise --start-timeout if the import is slow)", w.id, app, timeout)
	}
}

// exitError describes why a worker exited before it was ready.
func (w *worker) exitError(app string) error {
	var ee *exec.ExitError
	if errors.As(w.exitErr, &ee) {
		switch ee.ExitCode() {
		case exitAppLoad:
			return &LoadError{App: app, Message: fmt.Sprintf("cannot load %q (see the worker's log above)", app)}
		case exitUsage, exitChannel:
			return fmt.Errorf("worker %d could not start (exit status %d; see its log above)", w.id, ee.ExitCode())
		}
	}
	return fmt.Errorf("worker %d exited before it was ready: %v", w.id, w.exitErr)
}

// reap waits for the process after its output pipes are drained, then marks it done.
func (w *worker) reap() {
	w.pipes.Wait()
	w.exitErr = w.cmd.Wait()
	w.conn.Close()
	close(w.done)
}

// kill ends the process at once; safe to call many times and after it exited.
func (w *worker) kill() {
	w.killOnce.Do(func() {
		w.cmd.Process.Signal(syscall.SIGKILL)
		w.conn.Close()
	})
}

// stop asks the worker to finish: closing the channel makes the runner exit when idle.
func (w *worker) stop() {
	w.conn.CloseWrite()
}

// relay copies one output stream of the worker to the log, a line per entry. Lines the
// runner writes as hclog-style JSON keep their level and fields.
func (w *worker) relay(r io.ReadCloser, stream string) {
	defer w.pipes.Done()
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 0 && line[0] == '{' && w.relayJSON(line) {
			continue
		}
		w.log.Info(string(line), "stream", stream)
	}
	if err := sc.Err(); err != nil {
		w.log.Warn("worker output not relayed", "stream", stream, "error", err)
		io.Copy(io.Discard, r)
	}
}

func (w *worker) relayJSON(line []byte) bool {
	var m map[string]any
	if json.Unmarshal(line, &m) != nil {
		return false
	}
	msg, ok := m["@message"].(string)
	if !ok {
		return false
	}
	level := hclog.Info
	if s, ok := m["@level"].(string); ok {
		level = hclog.LevelFromString(s)
		if level == hclog.NoLevel {
			level = hclog.Info
		}
	}
	args := make([]any, 0, 2*len(m))
	for k, v := range m {
		if strings.HasPrefix(k, "@") {
			continue
		}
		args = append(args, k, v)
	}
	w.log.Log(level, msg, args...)
	return true
}
