//go:build integration

// The soak: a steady mixed load for CHAOS_SOAK (60 s by default), with the gateway's RSS, fds
// and threads and its workers' RSS sampled every second; the gateway must not grow over the
// last half of the run.

package chaos

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
	"github.com/yookoala/gofast"
)

// soakLength is $CHAOS_SOAK (a Go duration), 60 s by default: what CI's budget allows.
func soakLength(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("CHAOS_SOAK")
	if v == "" {
		return time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 20*time.Second {
		t.Fatalf("CHAOS_SOAK=%q: want a Go duration of at least 20s, e.g. 5m", v)
	}
	return d
}

// gofastGet sends GET path with gofast on a new connection, as a web server without
// keep-alive does.
func gofastGet(network, addr, path string) (int, string, error) {
	c, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory(network, addr))()
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	req := gofast.NewRequest(nil)
	for k, v := range map[string]string{
		"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost",
		"SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1", "QUERY_STRING": "", "REQUEST_URI": path,
		"SCRIPT_NAME": "", "PATH_INFO": path,
	} {
		req.Params[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	rec := httptest.NewRecorder()
	if err := resp.WriteTo(rec, io.Discard); err != nil {
		return 0, "", err
	}
	return rec.Code, rec.Body.String(), nil
}

// soakSample is one second of the soak.
type soakSample struct {
	rss, fds, threads int64 // the gateway
	worker            int64 // the largest worker's RSS
}

// window summarises samples [from, to) of ss (fractions of len(ss)): the median RSS (of the
// gateway and of the largest worker), the fewest fds (the floor: connections and worker
// restarts in flight come and go, a leak raises the floor), the most threads (Go keeps the
// threads it made).
func window(ss []soakSample, from, to float64) soakSample {
	part := ss[int(from*float64(len(ss))):int(to*float64(len(ss)))]
	if len(part) == 0 {
		return soakSample{}
	}
	rss, worker := make([]int64, len(part)), make([]int64, len(part))
	m := soakSample{fds: part[0].fds}
	for i, s := range part {
		rss[i], worker[i] = s.rss, s.worker
		m.fds, m.threads = min(m.fds, s.fds), max(m.threads, s.threads)
	}
	slices.Sort(rss)
	slices.Sort(worker)
	m.rss, m.worker = rss[len(rss)/2], worker[len(worker)/2]
	return m
}

// testSoak: a mixed load for CHAOS_SOAK — a keep-alive FastCGI client (/, /echo of 16 KiB,
// /big of 256 KiB, /sleep, /error), gofast with a connection per request, HTTP through nginx —
// with workers recycled by --max-requests all along. Nothing fails, and the gateway does not
// grow over the last half: the last quarter against the second, its median RSS by at most
// 10 % + 2 MiB, its floor of fds and its most threads by at most 2.
func testSoak(t *testing.T) {
	length := soakLength(t)
	g := startGateway(t, 2, "--max-requests", "500", "--max-requests-jitter", "100")
	n := startNginx(t, g)
	s := sample(g.pid())
	tl := newTally()
	body := bytes.Repeat([]byte("soak"), 4<<10)
	wantEcho := fmt.Sprintf("%d %d", len(body), len(body)/4*int('s'+'o'+'a'+'k'))
	var pids sync.Map // the workers that answered: --max-requests replaces them all along
	raw := newClient(g.network, g.address)
	defer raw.close()
	start := time.Now()
	l := goLoad(3, func(i int) {
		var kind, detail string
		t0 := time.Now()
		switch i {
		case 0: // a web server with keep-alive, several routes
			var sp spec
			want, check := 200, func(r result) bool { _, _, ok := hello(r); return ok }
			switch x := rand.IntN(20); {
			case x < 10:
				sp = get("/", "")
			case x < 13:
				sp = spec{method: "POST", path: "/echo", body: body}
				check = func(r result) bool { return string(r.body) == wantEcho }
			case x < 15:
				sp = get("/big", "262144")
				check = func(r result) bool { return len(r.body) == 262144 }
			case x < 18:
				sp = get("/sleep", "0.01")
			default:
				sp, want = get("/error", ""), 500
				check = func(result) bool { return true }
			}
			r := raw.do(sp, 30*time.Second)
			if _, pid, ok := hello(r); ok {
				pids.Store(pid, true)
			}
			if kind = r.kind(want); kind == "" && !check(r) {
				kind = "wrong body " + sp.path
			}
			detail = fmt.Sprintf("%s: %d %v %q", sp.path, r.status, r.err, truncate(r.body))
		case 1: // gofast, a connection per request
			code, b, err := gofastGet(g.network, g.address, "/")
			switch {
			case err != nil:
				kind = "gofast: " + err.Error()
			case code != 200 || !strings.HasPrefix(b, "v1 "):
				kind = fmt.Sprintf("gofast %d", code)
			}
			detail = b
		case 2: // HTTP through nginx
			url := n.base + "/"
			if rand.IntN(4) == 0 {
				url = n.base + "/stream/big?131072"
			}
			resp, err := n.client.Get(url)
			if err != nil {
				kind = "nginx: " + err.Error()
				break
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				kind = fmt.Sprintf("nginx %d %v", resp.StatusCode, err)
			}
			detail = truncate(b)
		}
		tl.add(kind, time.Since(t0), detail)
	})

	var samples []soakSample
	var mu sync.Mutex
	tick := time.NewTicker(time.Second)
	for time.Since(start) < length {
		<-tick.C
		var w int64
		for _, c := range testkit.Children(g.pid()) {
			w = max(w, rssKiB(c.PID))
		}
		u := g.usage()
		mu.Lock()
		samples = append(samples, soakSample{u.rss, u.fds, u.threads, w})
		mu.Unlock()
	}
	tick.Stop()
	l.stop()
	peak, worker := s.stop()
	mid, end := window(samples, 0.25, 0.5), window(samples, 0.75, 1)
	workers := 0
	pids.Range(func(any, any) bool { workers++; return true })
	report(t, tl.row(fmt.Sprintf("soak %v, mixed", length), peak, time.Since(start),
		fmt.Sprintf("gateway median RSS %s → %s, fds (floor) %d → %d, threads %d → %d (2nd → 4th quarter); largest worker %s; %d workers served (--max-requests 500)",
			mib(mid.rss), mib(end.rss), mid.fds, end.fds, mid.threads, end.threads, mib(worker), workers)))
	tl.wantNoFailure(t, "soak")
	if limit := mid.rss + mid.rss/10 + 2<<10; end.rss > limit {
		t.Errorf("gateway RSS grew over the last half: %s → %s (limit %s)", mib(mid.rss), mib(end.rss), mib(limit))
	}
	if end.fds > mid.fds+2 {
		t.Errorf("gateway fds grew over the last half: %d → %d", mid.fds, end.fds)
	}
	if end.threads > mid.threads+2 {
		t.Errorf("gateway threads grew over the last half: %d → %d", mid.threads, end.threads)
	}
	tl.wantAtLeast(t, int64(length.Seconds())*20)
	g.checkAlive(t)
}
