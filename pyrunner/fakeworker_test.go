//go:build linux

// fakeworker_test.go: the test binary plays a Python worker (go-plugin's helper-process
// pattern), so pool tests can stage every misbehaviour without Python.

package pyrunner

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeModeEnv selects the fake worker's behaviour; when set, TestMain runs the fake instead of
// the tests.
const fakeModeEnv = "PYRUNNER_FAKE_WORKER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeModeEnv); mode != "" {
		os.Exit(fakeWorker(mode))
	}
	os.Exit(m.Run())
}

// fakeOptions returns pool options that start the test binary as a fake worker in mode.
func fakeOptions(t *testing.T, mode string, workers int) Options {
	t.Helper()
	return Options{
		Python:       os.Args[0],
		App:          "fake:app",
		Workers:      workers,
		StartTimeout: 10 * time.Second,
		Env:          append(os.Environ(), fakeModeEnv+"="+mode, "GORACE=atexit_sleep_ms=0"), // a race-enabled fake exits at once
	}
}

// fakeWorker speaks the worker side of PROTOCOL.md. Modes:
//
//	echo       answer each request in one START|END frame: "200 OK", the environ's size and pid
//	readbody   READ the whole body, answer with its length and sha256
//	stream     START, then three DATA frames, the last with END
//	die        exit as soon as a request arrives
//	crash      as a Python that raises in the runner's own code: close the channel, print a
//	           traceback on stderr while exiting, then exit 1
//	sleep      sleep for the duration PATH_INFO names ("/1s"), then answer; "/die:50ms": sleep,
//	           then exit without answering
//	hang       never send READY
//	badheader  answer with a header value holding CR LF
//	fatal      send FATAL instead of READY and exit 4
//	apperror   START, then DATA with END|ERROR
//	drip       START, then a DATA frame every 2 ms (the PATH_INFO's count, "/100"), checking the
//	           cancel board before each: a cancelled request ends with ABORTED
//	deaf       like sleep, but it ignores the cancel board and SIGUSR2
//
// Every mode but deaf honours the cancel board (PROTOCOL.md): a request cancelled before it
// starts is answered ABORTED, and sleep wakes on SIGUSR2 and ends a cancelled request with
// ABORTED. With PYRUNNER_FAKE_LOG set, each request that starts appends its PATH_INFO there.
func fakeWorker(mode string) int {
	if path, ok := strings.CutPrefix(mode, "@"); ok { // the mode is in a file the test changes
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake worker:", err)
			return 3
		}
		mode = string(b)
	}
	// The stack pipe: SIGUSR1 writes a fake stack, as the runner's faulthandler does.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		fd, _ := strconv.Atoi(os.Getenv("WSGI_FCGI_RUNNER_STACK_FD"))
		dump := os.NewFile(uintptr(fd), "stack")
		for range usr1 {
			fmt.Fprintf(dump, "Current thread 0x0001 (most recent call first):\n  File \"fake.py\", line 1 in fake_%s\n", mode)
		}
	}()
	// SIGUSR2 interrupts: each one closes the current broadcast channel.
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	go func() {
		for range usr2 {
			fakeInterrupts.Lock()
			close(fakeInterrupts.ch)
			fakeInterrupts.ch = make(chan struct{})
			fakeInterrupts.Unlock()
		}
	}()
	if fd, err := strconv.Atoi(os.Getenv("WSGI_FCGI_RUNNER_BOARD_FD")); err == nil {
		mem, err := unix.Mmap(fd, 0, os.Getpagesize(), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake worker: board:", err)
			return 3
		}
		fakeBoard = &board{mem: mem}
	}
	// One channel per thread (WSGI_FCGI_RUNNER_FD="3:4,5:6,..."), each served on its own.
	chans := strings.Split(os.Getenv("WSGI_FCGI_RUNNER_FD"), ",")
	status := make(chan int, len(chans))
	for i, s := range chans[1:] {
		go func() { status <- fakeChannel(mode, s, i+1) }()
	}
	rc := fakeChannel(mode, chans[0], 0)
	for range chans[1:] {
		rc = max(rc, <-status)
	}
	return rc
}

// pipePair is a channel seen from the worker: requests come on r, frames go out on w.
type pipePair struct {
	r, w *os.File
}

func (p pipePair) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipePair) Write(b []byte) (int, error) { return p.w.Write(b) }

// The fake worker's cancel board (nil without one) and its SIGUSR2 broadcast.
var (
	fakeBoard      *board
	fakeInterrupts = struct {
		sync.Mutex
		ch chan struct{}
	}{ch: make(chan struct{})}
)

// interrupted returns a channel closed at the next SIGUSR2.
func interrupted() <-chan struct{} {
	fakeInterrupts.Lock()
	defer fakeInterrupts.Unlock()
	return fakeInterrupts.ch
}

// fakeCancelled reports whether request n of channel ch is marked on the board.
func fakeCancelled(ch int, n uint32) bool {
	if fakeBoard == nil {
		return false
	}
	ok, _ := fakeBoard.cancelled(ch, n)
	return ok
}

// fakeLog appends line to PYRUNNER_FAKE_LOG, if set.
func fakeLog(line string) {
	if path := os.Getenv("PYRUNNER_FAKE_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}

// fakeChannel serves one channel ("R:W", the index-th) of the fake worker.
func fakeChannel(mode, fds string, index int) int {
	rs, ws, _ := strings.Cut(fds, ":")
	rfd, err1 := strconv.Atoi(rs)
	wfd, err2 := strconv.Atoi(ws)
	if err1 != nil || err2 != nil {
		fmt.Fprintf(os.Stderr, "fake worker: channel %q is not R:W\n", fds)
		return 3
	}
	c := pipePair{os.NewFile(uintptr(rfd), "channel-r"), os.NewFile(uintptr(wfd), "channel-w")}
	br := bufio.NewReader(c)
	if mode == "fatal" {
		writeFrame(c, frameFatal, 0, []byte(`cannot import "fake": ModuleNotFoundError: No module named 'fake'`))
		return exitAppLoad
	}
	if mode == "hang" {
		select {} // never READY
	}
	writeFrame(c, frameReady, 0, []byte(fmt.Sprintf("protocol=2 pid=%d python=fake", os.Getpid())))
	fmt.Println("fake worker ready") // stdout is relayed to the log, never the channel
	var n uint32                     // the number of the last REQUEST
	for {
		h, payload, err := readFrame(br)
		if err == io.EOF {
			return 0
		}
		if err != nil || h.typ != frameRequest {
			fmt.Fprintln(os.Stderr, "fake worker: bad frame:", err, h.typ)
			return 3
		}
		envLen := binary.LittleEndian.Uint32(payload)
		inline := payload[4+envLen:]
		n++
		if got := binary.LittleEndian.Uint16(h.seq[:]); got != uint16(n) {
			fmt.Fprintf(os.Stderr, "fake worker: REQUEST numbered %d, want %d\n", got, uint16(n))
			return 3
		}
		if mode != "deaf" && fakeCancelled(index, n) {
			writeFrame(c, frameAborted, 0, nil)
			continue
		}
		pathInfo := environValue(payload[4:4+envLen], "PATH_INFO")
		fakeLog(pathInfo)
		switch mode {
		case "echo":
			writeStart(c, flagEnd, "200 OK\x00Content-Type\x00text/plain", fmt.Sprintf("environ %d bytes pid %d", envLen, os.Getpid()))
		case "readbody":
			sum := sha256.New()
			sum.Write(inline)
			size := len(inline)
			eof := h.flags&flagEOF != 0
			for !eof {
				var want [4]byte
				binary.LittleEndian.PutUint32(want[:], 256<<10)
				writeFrame(c, frameRead, 0, want[:])
				bh, body, err := readFrame(br)
				if err != nil || bh.typ != frameBody {
					return 3
				}
				sum.Write(body)
				size += len(body)
				eof = bh.flags&flagEOF != 0
				if bh.flags&flagError != 0 {
					break
				}
			}
			if fakeCancelled(index, n) {
				writeFrame(c, frameAborted, 0, nil) // the body read raised, as the runner's does
				continue
			}
			writeStart(c, flagEnd, "200 OK", fmt.Sprintf("%d %s", size, hex.EncodeToString(sum.Sum(nil))))
		case "stream":
			writeStart(c, 0, "200 OK", "one,")
			writeFrame(c, frameData, 0, []byte("two,"))
			writeFrame(c, frameData, flagEnd, []byte("three"))
		case "die":
			return 1
		case "crash":
			c.r.Close()
			c.w.Close()
			fmt.Fprintln(os.Stderr, "Traceback (most recent call last):")
			time.Sleep(300 * time.Millisecond) // the interpreter's exit takes its time
			fmt.Fprintln(os.Stderr, "AttributeError: 'str' object has no attribute 'isascii'")
			return 1
		case "sleep", "deaf":
			// PATH_INFO is "/" or "/<duration>".
			arg := strings.TrimPrefix(pathInfo, "/")
			arg, die := strings.CutPrefix(arg, "die:")
			d, _ := time.ParseDuration(arg)
			timer := time.NewTimer(d)
			stopped := false
			for waiting := true; waiting; {
				select {
				case <-timer.C:
					waiting = false
				case <-interrupted():
					if mode == "sleep" && fakeCancelled(index, n) {
						waiting, stopped = false, true
					}
				}
			}
			timer.Stop()
			if stopped {
				fakeLog("stopped " + pathInfo)
				writeFrame(c, frameAborted, 0, nil)
				continue
			}
			if die {
				return 1
			}
			writeStart(c, flagEnd, "200 OK", fmt.Sprintf("slept %v", d))
		case "drip":
			count, _ := strconv.Atoi(strings.TrimPrefix(pathInfo, "/"))
			writeStart(c, 0, "200 OK", "start\n")
			aborted := false
			for i := 0; i < count; i++ {
				if fakeCancelled(index, n) {
					aborted = true
					break
				}
				writeFrame(c, frameData, 0, []byte(fmt.Sprintf("chunk %d\n", i)))
				time.Sleep(2 * time.Millisecond)
			}
			if aborted {
				fakeLog("stopped " + pathInfo)
				writeFrame(c, frameAborted, 0, nil)
				continue
			}
			writeFrame(c, frameData, flagEnd, nil)
		case "badheader":
			writeStart(c, flagEnd, "200 OK\x00X-Evil\x00a\r\nSet-Cookie: b", "body")
		case "apperror":
			writeStart(c, 0, "200 OK", "partial")
			writeFrame(c, frameData, flagEnd|flagError, nil)
		}
	}
}

func writeStart(w io.Writer, flags uint8, block, body string) {
	p := binary.LittleEndian.AppendUint32(nil, uint32(len(block)))
	p = append(append(p, block...), body...)
	writeFrame(w, frameStart, flags, p)
}

func writeFrame(w io.Writer, typ frameType, flags uint8, payload []byte) {
	b := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
	putFrameHeader(b, len(payload), typ, flags)
	w.Write(append(b, payload...))
}

// fakeFrame is a frame as the fake worker reads it, with the header's last two bytes (a
// REQUEST's number).
type fakeFrame struct {
	frameHeader
	seq [2]byte
}

func readFrame(br *bufio.Reader) (fakeFrame, []byte, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fakeFrame{}, nil, err
	}
	h, err := parseFrameHeader(hdr[:])
	if err != nil {
		return fakeFrame{frameHeader: h}, nil, err
	}
	p := make([]byte, h.length)
	_, err = io.ReadFull(br, p)
	return fakeFrame{h, [2]byte{hdr[6], hdr[7]}}, p, err
}

// recorder is a ResponseWriter that keeps everything.
type recorder struct {
	status  string
	headers []string
	body    strings.Builder
	flushes int
	failAt  int // fail writes once the body reaches this size (0: never)
}

func (r *recorder) WriteHeader(status []byte, h Header) error {
	r.status = string(status)
	h.Each(func(n, v []byte) { r.headers = append(r.headers, string(n)+": "+string(v)) })
	return nil
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.failAt > 0 && r.body.Len()+len(p) >= r.failAt {
		return 0, io.ErrClosedPipe
	}
	return r.body.Write(p)
}

func (r *recorder) Flush() error { r.flushes++; return nil }

// environValue finds name in a marshal environ (as the fake worker receives it).
func environValue(env []byte, name string) string {
	r := Request{frame: append(make([]byte, requestPrefix), env[1:]...)}
	return r.lookup(name)
}
