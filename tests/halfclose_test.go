//go:build integration

// A web server that shuts down its sending side (shutdown(SHUT_WR)) once it has sent whole
// requests, through the real binary: each is answered, then the connection is closed, as
// php-fpm does; over a unix socket and TCP, with and without FCGI_KEEP_CONN.

package tests

import (
	"fmt"
	"io"
	"testing"
	"time"
)

func TestHalfClosedWebServer(t *testing.T) {
	tcpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp4", "127.0.0.1"))
	g := startGateway(t, gatewayConfig{app: "cutapp:application", workers: 2, args: []string{"--listen", tcpAddr}})
	shapes := []struct {
		name string
		reqs func(keep bool) ([]byte, []uint16)
	}{
		{"GET", func(keep bool) ([]byte, []uint16) { return fcgiRequest(1, "GET", "/ok", nil, keep), []uint16{1} }},
		{"POST with a body", func(keep bool) ([]byte, []uint16) {
			return fcgiRequest(1, "POST", "/ok", []byte("a body the app does not read"), keep), []uint16{1}
		}},
		{"two multiplexed", func(keep bool) ([]byte, []uint16) {
			b := fcgiRequest(1, "GET", "/ok", nil, keep)
			return append(b, fcgiRequest(2, "POST", "/ok", []byte("second"), keep)...), []uint16{1, 2}
		}},
	}
	for _, addr := range []struct{ network, address string }{{g.network, g.address}, {"tcp", tcpAddr}} {
		for _, keep := range []bool{true, false} {
			for _, shape := range shapes {
				t.Run(fmt.Sprintf("%s/keep_conn=%v/%s", addr.network, keep, shape.name), func(t *testing.T) {
					c := dialGateway(t, addr.network, addr.address)
					b, ids := shape.reqs(keep)
					if _, err := c.Write(b); err != nil {
						t.Fatal(err)
					}
					if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
						t.Fatal(err)
					}
					for id, res := range readRawResults(t, c, ids...) {
						if res.status() != 200 || string(res.body()) != "ok\n" {
							t.Errorf("request %d: status %d, body %q; want 200 ok", id, res.status(), res.body())
						}
					}
					c.SetReadDeadline(time.Now().Add(reqTimeout))
					if rest, err := io.ReadAll(c); err != nil || len(rest) > 0 {
						t.Errorf("after the answers: %d bytes, %v; want the connection closed", len(rest), err)
					}
				})
			}
		}
	}
}
