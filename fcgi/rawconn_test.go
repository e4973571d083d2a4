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

// readWithin reads once into a fresh buffer, failing the test if the read takes longer
// than d: a read that waits for an edge that never comes must fail, not hang.
func (rt *rawTest) readWithin(t *testing.T, size int, d time.Duration) (int, error) {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	rt.readers.Add(1)
	go func() {
		defer rt.readers.Done()
		n, err := rt.r.Read(make([]byte, size))
		done <- result{n, err}
	}()
	select {
	case res := <-done:
		return res.n, res.err
	case <-time.After(d):
		t.Fatalf("read still waiting after %v", d)
		return 0, nil
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
	if n, err := rt.readWithin(t, 64, 5*time.Second); n != 3 || err != nil {
		t.Fatalf("first read: %d, %v", n, err)
	}
	r.replyDue = false
	if n, err := rt.readWithin(t, 64, 5*time.Second); n != 0 || err != io.EOF {
		t.Fatalf("second read: %d, %v; want end of file", n, err)
	}
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
			if n, err := rt.readWithin(t, 64, 5*time.Second); n != 1 || err != nil {
				t.Fatalf("read: %d, %v", n, err)
			}
			readDone := make(chan error, 1)
			if tt.waiting {
				rt.readers.Add(1)
				go func() {
					defer rt.readers.Done()
					_, err := r.Read(make([]byte, 64))
					readDone <- err
				}()
				time.Sleep(20 * time.Millisecond)
			}
			closed := make(chan error, 1)
			go func() { closed <- r.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close waits for the reads")
			}
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := client.Read(make([]byte, 8)); err != io.EOF {
				t.Errorf("web server's read: %d, %v; want end of file", n, err)
			}
			var err error
			if tt.waiting {
				select {
				case err = <-readDone:
				case <-time.After(5 * time.Second):
					t.Fatal("a waiting read did not end")
				}
			} else {
				_, err = rt.readWithin(t, 64, 5*time.Second)
			}
			if err != io.EOF {
				t.Errorf("read after Close: %v; want end of file", err)
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
	if n, err := rt.readWithin(t, 64, 5*time.Second); n != 1 || err != nil {
		t.Fatalf("first read: %d, %v", n, err)
	}
	client.Write([]byte("b"))
	time.Sleep(20 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	if n, err := rt.readWithin(t, 64, 5*time.Second); n != 1 || err != nil {
		t.Fatalf("read of the data: %d, %v", n, err)
	}
	if n, err := rt.readWithin(t, 64, 5*time.Second); n != 0 || err != io.EOF {
		t.Fatalf("read after Close: %d, %v; want end of file", n, err)
	}
}
