//go:build integration

// FCGI_ABORT_REQUEST and a dropped connection, through the real binary with one worker: a
// request still queued for the worker never reaches it; a running one has its output stopped
// and FCGI_END_REQUEST sent at once, the app is stopped at its next chunk, and its worker
// serves the next request (the same process: not replaced). And a slow request multiplexed with others
// does not hold them up.

package tests

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// workerState is what /env of tests/apps/frontapp.py says about the worker that ran it.
type workerState struct {
	PID    int `json:"pid"`
	Served int `json:"served"`
}

func workerOf(t *testing.T, g *gateway) workerState {
	t.Helper()
	res := rawGet(t, g.network, g.address, "/env")
	var ws workerState
	if err := json.Unmarshal(res.body(), &ws); err != nil || ws.PID == 0 {
		t.Fatalf("/env: %v: %q", err, res.stdout)
	}
	return ws
}

// cancelRequest aborts request id on c, or drops c.
func cancelRequest(c net.Conn, id uint16, drop bool) {
	if drop {
		c.Close()
		return
	}
	c.Write(testkit.Record(fcgiAbortRequest, id, nil, 0))
}

// waitStatus polls the gateway's status page (--status-path /fcgi-status) until the JSON
// field key is want.
func waitStatus(t *testing.T, g *gateway, key string, want float64) {
	t.Helper()
	deadline := time.Now().Add(reqTimeout)
	for {
		var m map[string]any
		rec := fcgiGet(t, g.network, g.address, "/fcgi-status", "json&full")
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("status: %v\n%s", err, rec.Body)
		}
		if m[key] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %q is %v after %v, want %v: %s", key, m[key], reqTimeout, want, rec.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expectPromptEnd reads c until id's FCGI_END_REQUEST, which must come within limit.
func expectPromptEnd(t *testing.T, c net.Conn, id uint16, limit time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	defer c.SetReadDeadline(time.Time{})
	for {
		rc, err := readFcgiRec(c)
		if err != nil {
			t.Fatalf("no FCGI_END_REQUEST within %v of the abort: %v", limit, err)
		}
		if rc.id == id && rc.typ == fcgiEndRequest {
			return
		}
	}
}

func TestCancel(t *testing.T) {
	g := startGateway(t, gatewayConfig{app: "frontapp:application", workers: 1,
		args: []string{"--drain-timeout", "5s", "--status-path", "/fcgi-status"}})

	for _, tc := range []struct {
		name string
		drop bool
	}{{"FCGI_ABORT_REQUEST", false}, {"connection dropped", true}} {
		t.Run("queued, "+tc.name, func(t *testing.T) {
			before := workerOf(t, g)
			busy := dialGateway(t, g.network, g.address)
			busy.Write(fcgiRequest(1, "GET", "/sleep?s=1", nil, true))
			waitStatus(t, g, "active processes", 1) // the worker is running /sleep
			c := dialGateway(t, g.network, g.address)
			c.Write(fcgiRequest(1, "GET", "/env?queued", nil, true))
			waitStatus(t, g, "listen queue", 1) // queued for the worker
			cancelRequest(c, 1, tc.drop)
			if !tc.drop {
				expectPromptEnd(t, c, 1, 500*time.Millisecond)
			}
			readRawResults(t, busy, 1)
			after := workerOf(t, g)
			// /sleep and this /env: the canceled request never ran.
			if after.PID != before.PID || after.Served != before.Served+2 {
				t.Errorf("worker %+v before, %+v after: want the same pid and 2 more requests served", before, after)
			}
		})
		t.Run("running, "+tc.name, func(t *testing.T) {
			before := workerOf(t, g)
			c := dialGateway(t, g.network, g.address)
			c.Write(fcgiRequest(1, "GET", "/trickle?n=30", nil, true))
			c.SetReadDeadline(time.Now().Add(reqTimeout))
			if rc, err := readFcgiRec(c); err != nil || rc.typ != fcgiStdout {
				t.Fatalf("no output from /trickle: %+v %v", rc, err)
			}
			cancelRequest(c, 1, tc.drop)
			if !tc.drop {
				expectPromptEnd(t, c, 1, 500*time.Millisecond)
			}
			// The worker stops the app at its next chunk; then the same worker serves.
			after := workerOf(t, g)
			if after.PID != before.PID || after.Served != before.Served+2 {
				t.Errorf("worker %+v before, %+v after: want the same pid (reset, not replaced) and 2 more requests served", before, after)
			}
		})
	}

	t.Run("a slow request does not hold up its connection", func(t *testing.T) {
		g2 := startGateway(t, gatewayConfig{app: "frontapp:application", workers: 2})
		c := dialGateway(t, g2.network, g2.address)
		// A multiplexing client asks first whether it may.
		if v := getValues(t, c, "FCGI_MPXS_CONNS")["FCGI_MPXS_CONNS"]; v != "1" {
			t.Fatalf("FCGI_MPXS_CONNS %q", v)
		}
		// Request 1 sleeps without reading its 3 MiB body; request 2, behind that body on
		// the same connection, must not wait for it.
		big := make([]byte, 3<<20)
		b := fcgiBegin(1, roleResponder, true)
		b = append(b, fcgiParamsFor(1, "POST", "/sleep?s=2", len(big))...)
		b = append(b, testkit.Stream(fcgiStdin, 1, big)...)
		b = append(b, fcgiRequest(2, "GET", "/env?quick", nil, true)...)
		start := time.Now()
		go c.Write(b)
		c.SetReadDeadline(time.Now().Add(reqTimeout))
		rc := fcgiRec{}
		var err error
		for rc.typ != fcgiEndRequest {
			if rc, err = readFcgiRec(c); err != nil {
				t.Fatal(err)
			}
		}
		if rc.id != 2 || time.Since(start) > time.Second {
			t.Errorf("first FCGI_END_REQUEST is request %d's, after %v: want request 2's, well before request 1's 2 s", rc.id, time.Since(start))
		}
		readRawResults(t, c, 1)
	})

	t.Run("--no-multiplex", func(t *testing.T) {
		g3 := startGateway(t, gatewayConfig{app: "frontapp:application", workers: 2, args: []string{"--no-multiplex", "--drain-timeout", "3s"}})
		c := dialGateway(t, g3.network, g3.address)
		if v := getValues(t, c, "FCGI_MPXS_CONNS")["FCGI_MPXS_CONNS"]; v != "0" {
			t.Errorf("FCGI_MPXS_CONNS %q, want 0", v)
		}
		c.Write(fcgiRequest(1, "GET", "/sleep?s=1", nil, true))
		c.Write(fcgiRequest(2, "GET", "/env", nil, true))
		res := readRawResults(t, c, 1, 2)
		if res[2].protocolStatus != fcgiCantMpxConn || res[1].status() != 200 {
			t.Errorf("second request: protocolStatus %d (want FCGI_CANT_MPX_CONN); first: %q", res[2].protocolStatus, res[1].stdout)
		}
		g3.waitLog(t, "multiplexing disabled", 5*time.Second)
	})
}
