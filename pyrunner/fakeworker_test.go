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
	"syscall"
	"testing"
	"time"
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
//	sleep      sleep for the duration PATH_INFO names ("/1s"), then answer; "/die:50ms": sleep,
//	           then exit without answering
//	hang       never send READY
//	badheader  answer with a header value holding CR LF
//	fatal      send FATAL instead of READY and exit 4
//	apperror   START, then DATA with END|ERROR
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
	// One channel per thread (WSGI_FCGI_RUNNER_FD="3:4,5:6,..."), each served on its own.
	chans := strings.Split(os.Getenv("WSGI_FCGI_RUNNER_FD"), ",")
	status := make(chan int, len(chans))
	for _, s := range chans[1:] {
		go func() { status <- fakeChannel(mode, s) }()
	}
	rc := fakeChannel(mode, chans[0])
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

// fakeChannel serves one channel ("R:W") of the fake worker.
func fakeChannel(mode, fds string) int {
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
	writeFrame(c, frameReady, 0, []byte(fmt.Sprintf("protocol=1 pid=%d python=fake", os.Getpid())))
	fmt.Println("fake worker ready") // stdout is relayed to the log, never the channel
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
		switch mode {
		case "echo":
			writeStart(c, flagEnd, "200 OK\x00Content-Type\x00text/plain", fmt.Sprintf("environ %d bytes pid %d", envLen, os.Getpid()))
		case "readbody":
			sum := sha256.New()
			sum.Write(inline)
			n := len(inline)
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
				n += len(body)
				eof = bh.flags&flagEOF != 0
			}
			writeStart(c, flagEnd, "200 OK", fmt.Sprintf("%d %s", n, hex.EncodeToString(sum.Sum(nil))))
		case "stream":
			writeStart(c, 0, "200 OK", "one,")
			writeFrame(c, frameData, 0, []byte("two,"))
			writeFrame(c, frameData, flagEnd, []byte("three"))
		case "die":
			return 1
		case "sleep":
			// PATH_INFO is "/" or "/<duration>".
			arg := strings.TrimPrefix(environValue(payload[4:4+envLen], "PATH_INFO"), "/")
			arg, die := strings.CutPrefix(arg, "die:")
			d, _ := time.ParseDuration(arg)
			time.Sleep(d)
			if die {
				return 1
			}
			writeStart(c, flagEnd, "200 OK", fmt.Sprintf("slept %v", d))
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

func readFrame(br *bufio.Reader) (frameHeader, []byte, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return frameHeader{}, nil, err
	}
	h, err := parseFrameHeader(hdr[:])
	if err != nil {
		return h, nil, err
	}
	p := make([]byte, h.length)
	_, err = io.ReadFull(br, p)
	return h, p, err
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
