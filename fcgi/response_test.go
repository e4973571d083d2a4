package fcgi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
)

// serveFake runs one request through a fake connection and returns the
// bytes the server wrote and the number of Write calls.
func serveFake(t *testing.T, h HandlerFunc, body []byte) ([]byte, int) {
	t.Helper()
	fc := &fakeConn{r: bytes.NewReader(simpleRequest(1, 0, nil, body)), hold: true}
	srv := &Server{Handler: h, ConnError: func(_ net.Addr, err error) { t.Errorf("ConnError: %v", err) }}
	srv.serveRWC(fc, nil)
	return fc.output(), fc.writes
}

func TestResponseRecords(t *testing.T) {
	end := func(app uint32) []byte { return appendEndRequest(nil, 1, app, statusRequestComplete) }
	tests := []struct {
		name    string
		handler HandlerFunc
		want    [][]byte
	}{
		{
			"empty response",
			func(w *ResponseWriter, r *Request) {},
			[][]byte{makeRecord(typeStdout, 1, nil, 0), end(0)},
		},
		{
			"writes merge into one record",
			func(w *ResponseWriter, r *Request) {
				w.Write([]byte("Status: 200\r\n"))
				w.Write(nil)
				w.Write([]byte("\r\nbody"))
			},
			[][]byte{makeRecord(typeStdout, 1, []byte("Status: 200\r\n\r\nbody"), 0), makeRecord(typeStdout, 1, nil, 0), end(0)},
		},
		{
			"stderr interleaved, streams ended, app status",
			func(w *ResponseWriter, r *Request) {
				w.Write([]byte("a"))
				w.Write([]byte("b"))
				w.WriteStderr([]byte("oops"))
				w.Write([]byte("c"))
				w.SetAppStatus(-1)
			},
			[][]byte{
				makeRecord(typeStdout, 1, []byte("ab"), 0),
				makeRecord(typeStderr, 1, []byte("oops"), 0),
				makeRecord(typeStdout, 1, []byte("c"), 0),
				makeRecord(typeStdout, 1, nil, 0),
				makeRecord(typeStderr, 1, nil, 0),
				end(0xffffffff),
			},
		},
		{
			"flush closes the record",
			func(w *ResponseWriter, r *Request) {
				w.Write([]byte("one"))
				w.Flush()
				w.Flush()
				w.Write([]byte("two"))
			},
			[][]byte{makeRecord(typeStdout, 1, []byte("one"), 0), makeRecord(typeStdout, 1, []byte("two"), 0), makeRecord(typeStdout, 1, nil, 0), end(0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := serveFake(t, tt.handler, nil)
			if want := bytes.Join(tt.want, nil); !bytes.Equal(got, want) {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

// A write larger than the buffer goes out as records of at most 65535
// bytes, after what was buffered.
func TestLargeWriteRecords(t *testing.T) {
	big := make([]byte, 3*65535+1000)
	for i := range big {
		big[i] = byte(i)
	}
	got, _ := serveFake(t, func(w *ResponseWriter, r *Request) {
		w.Write([]byte("hdr"))
		w.Write(big)
		w.Write([]byte("tail"))
	}, nil)
	want := bytes.Join([][]byte{
		makeRecord(typeStdout, 1, []byte("hdr"), 0),
		makeRecord(typeStdout, 1, big[:65535], 0),
		makeRecord(typeStdout, 1, big[65535:2*65535], 0),
		makeRecord(typeStdout, 1, big[2*65535:3*65535], 0),
		makeRecord(typeStdout, 1, big[3*65535:], 0),
		makeRecord(typeStdout, 1, []byte("tail"), 0),
		makeRecord(typeStdout, 1, nil, 0),
		appendEndRequest(nil, 1, 0, statusRequestComplete),
	}, nil)
	if !bytes.Equal(got, want) {
		t.Errorf("records differ (got %d bytes, want %d)", len(got), len(want))
	}
}

// Writes of every size around the buffer's edge come out intact.
func TestWriteSizes(t *testing.T) {
	room := outBufSize - endReserve - headerLen
	sizes := []int{1, room - 1, room, room + 1, outBufSize, 65535, 65536, 64*65535 + 1, 200 << 10}
	for _, first := range []int{0, 10, room} {
		for _, size := range sizes {
			t.Run(fmt.Sprintf("after%d/size%d", first, size), func(t *testing.T) {
				pre := bytes.Repeat([]byte{'p'}, first)
				data := make([]byte, size)
				for i := range data {
					data[i] = byte(i % 251)
				}
				out, _ := serveFake(t, func(w *ResponseWriter, r *Request) {
					w.Write(pre)
					w.Write(data)
					w.Write(data[:size/2])
				}, nil)
				resp := readResponse(t, bytes.NewReader(out), 1)
				want := append(append(bytes.Clone(pre), data...), data[:size/2]...)
				if !bytes.Equal(resp.stdout, want) {
					t.Errorf("stdout differs: %d bytes, want %d", len(resp.stdout), len(want))
				}
				for _, rc := range resp.records {
					if len(rc.content) > maxContent {
						t.Errorf("record of %d bytes", len(rc.content))
					}
				}
			})
		}
	}
}

// The performance contract: a handler that writes a small response and
// returns causes exactly one write on the connection.
func TestSmallResponseOneWrite(t *testing.T) {
	tests := []struct {
		name    string
		handler HandlerFunc
		want    int
	}{
		{"headers and body", func(w *ResponseWriter, r *Request) {
			w.Write([]byte("Status: 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\r\n"))
			w.Write([]byte("<p>hello</p>"))
		}, 1},
		{"with stderr", func(w *ResponseWriter, r *Request) {
			w.WriteStderr([]byte("warning"))
			w.Write([]byte("Status: 204\r\n\r\n"))
		}, 1},
		{"nearly full buffer", func(w *ResponseWriter, r *Request) {
			w.Write(make([]byte, outBufSize-endReserve-headerLen))
		}, 1},
		{"flush costs one more", func(w *ResponseWriter, r *Request) {
			w.Write([]byte("Status: 200\r\n\r\n"))
			w.Flush()
			w.Write([]byte("body"))
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, client := unixPair(t)
			defer client.Close()
			cc := &countingConn{Conn: sc}
			srv := &Server{Handler: tt.handler}
			done := make(chan struct{})
			go func() {
				srv.ServeConn(cc)
				close(done)
			}()
			client.Write(simpleRequest(1, flagKeepConn, map[string]string{"REQUEST_METHOD": "GET"}, nil))
			readResponse(t, client, 1)
			if n := cc.count(); n != tt.want {
				t.Errorf("%d writes, want %d", n, tt.want)
			}
			client.Close()
			<-done
		})
	}
}

func TestWriteAfterReturn(t *testing.T) {
	leaked := make(chan *ResponseWriter, 1)
	serveFake(t, func(w *ResponseWriter, r *Request) { leaked <- w }, nil)
	w := <-leaked
	if _, err := w.Write([]byte("late")); !errors.Is(err, errWriteAfterReturn) {
		t.Errorf("Write after return: %v", err)
	}
	if err := w.Flush(); !errors.Is(err, errWriteAfterReturn) {
		t.Errorf("Flush after return: %v", err)
	}
	w.Abort() // no effect
}

// Flush sends the buffered output before the handler returns.
func TestFlushSends(t *testing.T) {
	proceed := make(chan struct{})
	ts := startServer(t, "unix", HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Write([]byte("Status: 200\r\n\r\nfirst"))
		if err := w.Flush(); err != nil {
			t.Error(err)
		}
		<-proceed
		w.Write([]byte("second"))
	}))
	c := ts.dial(t)
	c.Write(simpleRequest(1, flagKeepConn, nil, nil))
	rc, err := readRec(c)
	if err != nil || !bytes.HasSuffix(rc.content, []byte("first")) {
		t.Fatalf("before return: %v %v", rc, err)
	}
	close(proceed)
	resp := readResponse(t, c, 1)
	if string(resp.stdout) != "second" {
		t.Errorf("after: %q", resp.stdout)
	}
}

// Body.Read after the handler returned, and the io.Reader edge cases.
func TestBodyEdges(t *testing.T) {
	var body *Body
	serveFake(t, func(w *ResponseWriter, r *Request) {
		if n, err := r.Body.Read(nil); n != 0 || err != nil {
			t.Errorf("Read(nil) = %d, %v", n, err)
		}
		b, err := io.ReadAll(r.Body)
		if string(b) != "data" || err != nil {
			t.Errorf("ReadAll = %q, %v", b, err)
		}
		if n, err := r.Body.Read(make([]byte, 4)); n != 0 || err != io.EOF {
			t.Errorf("Read at EOF = %d, %v", n, err)
		}
		body = r.Body
	}, []byte("data"))
	if _, err := body.Read(make([]byte, 1)); !errors.Is(err, errBodyAfterReturn) {
		t.Errorf("Read after return: %v", err)
	}
}
