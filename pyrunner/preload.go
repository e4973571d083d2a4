//go:build linux

// preload.go: preload masters (Options.Preload). One Python process per pool generation
// imports the app once, calls gc.freeze(), and forks a worker for each FORK the gateway sends
// over its control socket, with the worker's channel and stack pipe attached (SCM_RIGHTS).
// The forked worker speaks the same protocol on its channel as any other (PROTOCOL.md,
// "Preload").

package pyrunner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// errMasterGone: the preload master exited, taking its workers with it.
var errMasterGone = errors.New("preload master exited")

// MaxPreloadThreads is the most Options.Threads a preload master can fork a worker with: a
// FORK carries the worker's stdout and stderr, two descriptors per channel, the cancel board
// and the stack pipe in one SCM_RIGHTS message, and the kernel takes at most 253
// (SCM_MAX_FD).
const MaxPreloadThreads = 124

// master is one preload master process.
type master struct {
	gen   int
	pid   int
	cmd   *exec.Cmd
	ctl   *net.UnixConn // SOCK_SEQPACKET: one frame per message
	log   hclog.Logger
	pipes sync.WaitGroup
	done  chan struct{} // closed when the master has exited and its workers are marked exited

	mu      sync.Mutex
	token   uint32
	pending map[uint32]*process // FORK sent, SPAWNED not read yet
	byPID   map[int]*process    // forked and not yet reported EXITED
	closed  bool                // no more FORKs: the control socket is closed or broke
}

// masterSlot lets the spawns of one generation share the master that the first one starts.
type masterSlot struct {
	ready chan struct{}
	m     *master
	err   error
}

// waitStatus is a forked worker's exit as its master reported it.
type waitStatus syscall.WaitStatus

func (s waitStatus) Error() string {
	ws := syscall.WaitStatus(s)
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// ExitCode is the exit status, or -1 when a signal ended the process (as *exec.ExitError).
func (s waitStatus) ExitCode() int {
	if ws := syscall.WaitStatus(s); ws.Exited() {
		return ws.ExitStatus()
	}
	return -1
}

// masterFor returns the master of generation gen, starting it if need be.
func (p *Pool) masterFor(gen int) (*master, error) {
	p.masterMu.Lock()
	slot := p.masters[gen]
	if slot != nil {
		p.masterMu.Unlock()
		select {
		case <-slot.ready:
		case <-p.stop:
			return nil, ErrClosed
		}
		return slot.m, slot.err
	}
	slot = &masterSlot{ready: make(chan struct{})}
	p.masters[gen] = slot
	p.masterMu.Unlock()
	slot.m, slot.err = p.startMaster(gen)
	if slot.err != nil {
		p.dropMaster(gen, slot)
	}
	close(slot.ready)
	return slot.m, slot.err
}

// dropMaster forgets slot, so that the next spawn of gen starts a new master.
func (p *Pool) dropMaster(gen int, slot *masterSlot) {
	p.masterMu.Lock()
	if p.masters[gen] == slot {
		delete(p.masters, gen)
	}
	p.masterMu.Unlock()
}

// startMaster starts a preload master and waits until it has imported the app.
func (p *Pool) startMaster(gen int) (*master, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	parentFile := os.NewFile(uintptr(fds[0]), "wsgi-fcgi-control")
	childFile := os.NewFile(uintptr(fds[1]), "wsgi-fcgi-control-child")
	fc, err := net.FileConn(parentFile)
	parentFile.Close()
	if err != nil {
		childFile.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	cmd := p.runnerCommand([]*os.File{childFile}, 0, "--preload")
	stdout, stderr, err := p.startCommand(cmd)
	childFile.Close()
	if err != nil {
		fc.Close()
		return nil, p.startError(err)
	}
	m := &master{
		gen:     gen,
		pid:     cmd.Process.Pid,
		cmd:     cmd,
		ctl:     fc.(*net.UnixConn),
		done:    make(chan struct{}),
		pending: make(map[uint32]*process),
		byPID:   make(map[int]*process),
	}
	m.log = p.log.With("preload_master", true, "pid", m.pid)
	m.pipes.Add(2)
	go relay(m.log, &m.pipes, stdout, "stdout")
	go relay(m.log, &m.pipes, stderr, "stderr")
	if err := m.handshake(p.opts.StartTimeout, p.opts.App); err != nil {
		cmd.Process.Kill()
		m.ctl.Close()
		m.pipes.Wait()
		cmd.Wait()
		return nil, err
	}
	m.log.Debug("preload master ready: the app is imported")
	go m.readLoop(p)
	return m, nil
}

// handshake reads the master's READY or FATAL.
func (m *master) handshake(timeout time.Duration, app string) error {
	m.ctl.SetReadDeadline(time.Now().Add(timeout))
	defer m.ctl.SetReadDeadline(time.Time{})
	buf := make([]byte, frameHeaderLen+64<<10)
	n, _, _, _, err := m.ctl.ReadMsgUnix(buf, nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("preload master did not load %q within %v (raise --start-timeout if the import is slow)", app, timeout)
	}
	if err != nil || n < frameHeaderLen {
		m.pipes.Wait()
		werr := m.cmd.Wait()
		var ee interface{ ExitCode() int }
		if errors.As(werr, &ee) && ee.ExitCode() == exitAppLoad {
			return &LoadError{App: app, Message: fmt.Sprintf("cannot load %q (see the log above)", app)}
		}
		return fmt.Errorf("preload master exited before it was ready: %v", werr)
	}
	h, err := parseFrameHeader(buf[:frameHeaderLen])
	if err != nil {
		return err
	}
	payload := buf[frameHeaderLen:n]
	switch h.typ {
	case frameReady:
		return nil
	case frameFatal:
		msg, tb, _ := strings.Cut(string(payload), "\n")
		return &LoadError{App: app, Message: strings.TrimSpace(msg), Traceback: strings.TrimSpace(tb)}
	}
	return fmt.Errorf("preload master: %w: %v frame before READY", errProtocol, h.typ)
}

// readLoop reads SPAWNED and EXITED until the control socket ends, then marks the master's
// remaining workers exited (they die with it: PR_SET_PDEATHSIG) and reaps the master.
func (m *master) readLoop(p *Pool) {
	buf := make([]byte, 64)
	for {
		n, _, _, _, err := m.ctl.ReadMsgUnix(buf, nil)
		if err != nil || n < frameHeaderLen+8 {
			break
		}
		typ := frameType(buf[4])
		a := binary.LittleEndian.Uint32(buf[frameHeaderLen:])
		b := binary.LittleEndian.Uint32(buf[frameHeaderLen+4:])
		switch typ {
		case frameSpawned:
			m.mu.Lock()
			pr := m.pending[a]
			delete(m.pending, a)
			if pr != nil {
				pr.pid = int(b)
				m.byPID[pr.pid] = pr
			}
			m.mu.Unlock()
			if pr != nil {
				pr.spawned <- int(b)
			}
		case frameExited:
			m.mu.Lock()
			pr := m.byPID[int(a)]
			delete(m.byPID, int(a))
			m.mu.Unlock()
			if pr != nil {
				pr.finish(waitStatus(int32(b)))
			}
		}
	}
	m.mu.Lock()
	m.closed = true
	pending, forked := m.pending, m.byPID
	m.pending, m.byPID = nil, nil
	m.mu.Unlock()
	for _, pr := range pending {
		pr.spawned <- 0
	}
	for _, pr := range forked {
		pr.finish(errMasterGone)
	}
	m.ctl.Close()
	m.pipes.Wait()
	if err := m.cmd.Wait(); err != nil {
		p.mu.Lock()
		closing := p.closing
		p.mu.Unlock()
		if !closing {
			m.log.Warn("preload master exited", "error", err)
		}
	}
	p.masterMu.Lock()
	if slot := p.masters[m.gen]; slot != nil && slot.m == m {
		delete(p.masters, m.gen)
	}
	p.masterMu.Unlock()
	close(m.done)
}

// forkProcess has the master of pr's generation fork pr, and waits for its READY. The worker
// gets stdout and stderr of its own, relayed to the log with its own pid.
func (p *Pool) forkProcess(pr *process) error {
	m, err := p.masterFor(pr.gen)
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("worker %d: stdout pipe: %w", pr.id, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeFiles([]*os.File{outR, outW})
		return fmt.Errorf("worker %d: stderr pipe: %w", pr.id, err)
	}
	files, dumpR, err := p.channels(pr)
	if err != nil {
		closeFiles([]*os.File{outR, outW, errR, errW})
		return err
	}
	files = append([]*os.File{outW, errW}, files...)
	fail := func(err error) error {
		pr.closeChannels()
		pr.board.release()
		closeFiles([]*os.File{dumpR, outR, errR})
		return err
	}
	pr.dump = dumpR // before FORK: an EXITED may come as soon as SPAWNED
	pr.spawned = make(chan int, 1)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		closeFiles(files)
		return fail(errMasterGone)
	}
	m.token++
	token := m.token
	m.pending[token] = pr
	m.mu.Unlock()
	var msg [frameHeaderLen + 4]byte
	putFrameHeader(msg[:], 4, frameFork, 0)
	binary.LittleEndian.PutUint32(msg[frameHeaderLen:], token)
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	_, _, err = m.ctl.WriteMsgUnix(msg[:], syscall.UnixRights(fds...), nil)
	closeFiles(files)
	if err != nil {
		m.mu.Lock()
		delete(m.pending, token)
		m.mu.Unlock()
		return fail(fmt.Errorf("preload master: send FORK: %w", err))
	}
	var pid int
	timer := time.NewTimer(p.opts.StartTimeout)
	defer timer.Stop()
	select {
	case pid = <-pr.spawned:
	case <-timer.C:
	}
	if pid == 0 {
		return fail(fmt.Errorf("worker %d: %w before it forked the worker", pr.id, errMasterGone))
	}
	if pr.handle, err = os.FindProcess(pid); err != nil {
		return fail(fmt.Errorf("worker %d: %w", pr.id, err))
	}
	pr.init(p)
	pr.log = pr.log.With("preload", true)
	pr.pipes.Add(2)
	go relay(pr.log, &pr.pipes, outR, "stdout")
	go relay(pr.log, &pr.pipes, errR, "stderr")
	return pr.handshake(p)
}

// closeIdleMastersLocked closes the control socket of every master of a generation that is
// neither current nor reloading and has no worker left: it exits.
func (p *Pool) closeIdleMastersLocked() {
	if !p.opts.Preload {
		return
	}
	used := map[int]bool{p.gen: true}
	if p.reload != nil {
		used[p.reload.gen] = true
	}
	for w := range p.workers {
		used[w.p.gen] = true
	}
	p.masterMu.Lock()
	defer p.masterMu.Unlock()
	for gen, slot := range p.masters {
		if used[gen] {
			continue
		}
		select {
		case <-slot.ready:
			if slot.m != nil {
				slot.m.ctl.CloseWrite()
			}
			delete(p.masters, gen)
		default:
		}
	}
}

// closeMasters ends every master (the pool is closing) and waits for them.
func (p *Pool) closeMasters() {
	p.masterMu.Lock()
	var ms []*master
	for gen, slot := range p.masters {
		select {
		case <-slot.ready:
			if slot.m != nil {
				ms = append(ms, slot.m)
			}
		default:
		}
		delete(p.masters, gen)
	}
	p.masterMu.Unlock()
	for _, m := range ms {
		m.ctl.CloseWrite()
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			m.cmd.Process.Kill()
			<-m.done
		}
	}
}
