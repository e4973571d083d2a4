package fcgi

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// rawTest is a connection for rawConn's tests: the accepted end of a unix socket connection
// as a *rawConn (r), the dialled end (client), and the reads the test runs in other
// goroutines, which end before the cleanup stops the pump, even after a failure.
type rawTest struct {
	r       *rawConn
	client  net.Conn
	readers sync.WaitGroup
}

// rawPair returns a rawTest over a new unix socket connection; its cleanup ends the reads.
func rawPair(t *testing.T) *rawTest {
	t.Helper()
	server, client := unixPair(t)
	r, ok := newRawConn(server).(*rawConn)
	if !ok {
		t.Fatal("a unix conn is not wrapped")
	}
	rt := &rawTest{r: r, client: client}
	t.Cleanup(func() {
		r.Close() // a read still waiting sees the end
		client.Close()
		rt.readers.Wait()
		r.endReads()
	})
	return rt
}

// readWait bounds every read of these tests: a read that waits for an edge that never comes
// must fail the test, not hang it.
const readWait = 5 * time.Second

type readResult struct {
	n   int
	err error
}

// startRead reads once, into a fresh 64-byte buffer, in another goroutine.
func (rt *rawTest) startRead() <-chan readResult {
	done := make(chan readResult, 1)
	rt.readers.Add(1)
	go func() {
		defer rt.readers.Done()
		n, err := rt.r.Read(make([]byte, 64))
		done <- readResult{n, err}
	}()
	return done
}

// await returns the result of a read startRead started, failing the test past readWait.
func await(t *testing.T, done <-chan readResult) readResult {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(readWait):
		t.Fatalf("read still waiting after %v", readWait)
		return readResult{}
	}
}

// expectRead reads once and fails the test unless the read returns n bytes and err.
func (rt *rawTest) expectRead(t *testing.T, what string, n int, err error) {
	t.Helper()
	if res := await(t, rt.startRead()); res.n != n || res.err != err {
		t.Fatalf("%s: %d, %v; want %d, %v", what, res.n, res.err, n, err)
	}
}

// Between records, while a reply is due, a read that follows one that emptied a unix socket
// waits for the poller instead of trying the socket first; otherwise it tries at once. The
// request and response rhythm of a kept connection then costs no read that finds nothing,
// and no byte is lost.
func TestRawConnIdleReadWaitsForReadiness(t *testing.T) {
	tests := []struct {
		name       string
		replyDue   bool
		wantEagain bool
	}{
		{"between records, a reply due", true, false},
		{"inside a record, or no reply due", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := rawPair(t)
			r, client := rt.r, rt.client
			const rounds = 200
			msg := make([]byte, 100)
			go func() {
				for i := range rounds {
					msg[0] = byte(i)
					if _, err := client.Write(msg); err != nil {
						return
					}
					time.Sleep(time.Duration(i%5) * 50 * time.Microsecond)
				}
			}()
			buf := make([]byte, 4096)
			got := 0
			for got < rounds*len(msg) {
				r.replyDue = tt.replyDue
				n, err := r.Read(buf)
				if err != nil {
					t.Fatalf("after %d bytes: %v", got, err)
				}
				got += n
			}
			if tt.wantEagain && r.eagain == 0 {
				t.Errorf("%d reads found nothing; a read inside a record must try the socket first", r.eagain)
			}
			if !tt.wantEagain && r.eagain > rounds/20 {
				t.Errorf("%d of %d idle reads found nothing", r.eagain, rounds)
			}
		})
	}
}

// Part of a record and the end of the stream, arriving together, raise one edge: the read
// inside the record that follows must see the end at once, not wait for another edge.
func TestRawConnEndAfterDataInsideRecord(t *testing.T) {
	rt := rawPair(t)
	r, client := rt.r, rt.client
	client.Write([]byte{1, 1, 0})
	client.(*net.UnixConn).CloseWrite()
	time.Sleep(20 * time.Millisecond) // both have arrived before the first read
	r.replyDue = true
	rt.expectRead(t, "first read", 3, nil)
	r.replyDue = false
	rt.expectRead(t, "second read", 0, io.EOF)
}

// Close while the pump holds the read lock (suspended between reads, or waiting for
// readiness) returns at once, whichever goroutine calls it; the web server sees the
// connection closed; the reads end; endReads closes the descriptor.
func TestRawConnCloseWhileReading(t *testing.T) {
	tests := []struct {
		name    string
		waiting bool // the reader is waiting for readiness when Close comes
	}{
		{"suspended between reads", false},
		{"waiting for readiness", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := rawPair(t)
			r, client := rt.r, rt.client
			client.Write([]byte("x"))
			r.replyDue = true
			rt.expectRead(t, "read", 1, nil)
			var waiting <-chan readResult
			if tt.waiting {
				waiting = rt.startRead()
				time.Sleep(20 * time.Millisecond)
			}
			closed := make(chan error, 1)
			go func() { closed <- r.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close: %v", err)
				}
			case <-time.After(readWait):
				t.Fatal("Close waits for the reads")
			}
			client.SetReadDeadline(time.Now().Add(readWait))
			if n, err := client.Read(make([]byte, 8)); err != io.EOF {
				t.Errorf("web server's read: %d, %v; want end of file", n, err)
			}
			if !tt.waiting {
				waiting = rt.startRead()
			}
			if res := await(t, waiting); res.n != 0 || res.err != io.EOF {
				t.Errorf("read after Close: %d, %v; want end of file", res.n, res.err)
			}
			r.endReads()
			if err := r.rc.Control(func(uintptr) {}); !errors.Is(err, net.ErrClosed) {
				t.Errorf("descriptor after endReads: %v; want closed", err)
			}
		})
	}
}

// However the web server closes a kept connection, the server sees it and lets the
// connection go, over unix sockets and TCP: the reads that wait for readiness first (pump)
// must not miss an end that came together with data.
func TestServerSeesWebServerClose(t *testing.T) {
	req := simpleRequest(1, flagKeepConn, map[string]string{"REQUEST_METHOD": "GET"}, []byte("hi"))
	tests := []struct {
		name string
		run  func(c net.Conn)
	}{
		{"request and close together", func(c net.Conn) {
			c.Write(req)
			c.Close()
		}},
		{"answered, then stray records and close together", func(c net.Conn) {
			c.Write(req)
			readResponse(t, c, 1)
			c.Write(makeRecord(typeStdin, 1, []byte("late"), 0))
			c.Close()
		}},
		{"request and half-close together, then close", func(c net.Conn) {
			c.Write(req)
			c.(interface{ CloseWrite() error }).CloseWrite()
			// The request may be answered or cut; either way, everything is read before the
			// close, so that a TCP close sends no reset.
			for {
				rc, err := readRec(c)
				if err != nil || rc.typ == typeEndRequest {
					break
				}
			}
			c.Close()
		}},
		{"answered, then close", func(c net.Conn) {
			c.Write(req)
			readResponse(t, c, 1)
			c.Close()
		}},
	}
	for _, network := range []string{"unix", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				ts := startServer(t, network, echoHandler)
				for range 20 {
					tt.run(ts.dial(t))
				}
				deadline := time.Now().Add(5 * time.Second)
				for {
					ts.Server.mu.Lock()
					n := len(ts.Server.conns)
					ts.Server.mu.Unlock()
					if n == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%d of 20 connections still open 5 s after the web server closed them", n)
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
}

// Data from the web server and a Close from this side, both while the reader is busy,
// raise one wake-up between them: the read after the data must not wait for another, even
// with a reply due (a closed connection writes nothing more to fail).
func TestRawConnDataThenOwnClose(t *testing.T) {
	rt := rawPair(t)
	r, client := rt.r, rt.client
	client.Write([]byte("a"))
	r.replyDue = true
	rt.expectRead(t, "first read", 1, nil)
	client.Write([]byte("b"))
	time.Sleep(20 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	rt.expectRead(t, "read of the data", 1, nil)
	rt.expectRead(t, "read after Close", 0, io.EOF)
}
