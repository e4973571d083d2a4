//go:build linux

package fcgi

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseRegistration(t *testing.T) {
	info := "pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\n" +
		"tfd:        7 events:       19 data:           b4dec8  pos:0 ino:11 sdev:10\n" +
		"tfd:       22 events: 8000201d data: 3f8d39a332000007  pos:0 ino:413bfcb sdev:9\n" +
		"tfd:       23 events: 80002019 data: 3f8d39a33100000d  pos:0 ino:413bfed sdev:9\n" +
		"tfd:       24 events: 8000201d data: zz  pos:0 ino:413bfed sdev:9\n"
	for _, tc := range []struct {
		name    string
		fd      int
		want    registration
		wantErr string
	}{
		{name: "runtime's entry", fd: 22, want: registration{events: 0x8000201d, data: 0x3f8d39a332000007}},
		{name: "EPOLLOUT already out", fd: 23, want: registration{events: 0x80002019, data: 0x3f8d39a33100000d}},
		{name: "level-triggered: not the runtime's", fd: 7, wantErr: "not edge-triggered"},
		{name: "absent", fd: 99, wantErr: "not in the epoll set"},
		{name: "a prefix is not the descriptor", fd: 2, wantErr: "not in the epoll set"},
		{name: "bad data", fd: 24, wantErr: "invalid syntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scanRegistration(strings.NewReader(info), tc.fd)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error with %q", got, err, tc.wantErr)
				}
			case err != nil || got != tc.want:
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestQuietWriteSpace: a unix connection's registration loses EPOLLOUT; a write bigger than
// the socket buffer puts it back while it waits, completes as the peer reads, and takes it
// out again.
func TestQuietWriteSpace(t *testing.T) {
	server, client := unixPair(t)
	defer client.Close()
	r := newRawConn(server).(*rawConn)
	defer r.Close()
	var p runtimePoller
	r.quietWriteSpace(&p)
	if !r.quiet {
		t.Fatal("EPOLLOUT was not taken out of the registration")
	}
	fd := r.reg.epfd
	events := func() uint32 {
		t.Helper()
		var got registration
		var err error
		r.rc.Control(func(sfd uintptr) { got, err = readRegistration(fd, int(sfd)) })
		if err != nil {
			t.Fatal(err)
		}
		return got.events
	}
	if e := events(); e&epollOut != 0 || e&epollET == 0 {
		t.Fatalf("registered events %#x, want edge-triggered without EPOLLOUT", e)
	}

	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB: far over the buffer
	done := make(chan error, 1)
	go func() {
		_, err := r.Write(payload)
		done <- err
	}()
	// The writer fills the buffer, then puts EPOLLOUT back before it waits.
	for deadline := time.Now().Add(5 * time.Second); events()&epollOut == 0; {
		select {
		case err := <-done:
			t.Fatalf("an 8 MiB write returned before the peer read: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("registered events %#x after 5 s of a write waiting for room, want EPOLLOUT", events())
		}
		time.Sleep(time.Millisecond)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(io.LimitReader(client, int64(len(payload))))
	if err != nil {
		t.Fatalf("read %d of %d bytes: %v (the writer never heard of the room?)", len(got), len(payload), err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("read other bytes than written")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e := events(); e&epollOut != 0 || r.outArmed {
		t.Errorf("registered events %#x after the write, want EPOLLOUT out again", e)
	}
	// The other way still works: reads wait in the poller as before.
	go client.Write([]byte("ping"))
	buf := make([]byte, 8)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	r.endReads()
}
