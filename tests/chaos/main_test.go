//go:build integration

// Package chaos drives a live wsgi-fcgi (real Python workers, gofast and a raw FastCGI client
// playing the web server, real nginx where it matters) through faults, overload, abuse of the
// FastCGI socket and a bounded soak, and fails when a promise of docs/reliability.md
// is broken. Each scenario prints one line when it ends; TestChaos prints a table of
// them at the end and writes it to $CHAOS_OUT (default: a file in a temp dir; the path is
// printed).
//
//	nice -n 19 go test -tags integration -count=1 -v -run TestChaos ./tests/chaos/
//
// CHAOS_SOAK sets the soak's length (a Go duration; default 60s, what CI runs). Every process
// a test starts is stopped by that test, by pid.
package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// gatewayBin is the wsgi-fcgi binary TestMain builds.
var gatewayBin string

func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithGateway(m, repoRoot(), "chaos", &gatewayBin))
}

// repoRoot is the repository root: go test runs in the package's directory.
func repoRoot() string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return root
}

// row is one scenario's figures.
type row struct {
	name     string
	sent, ok int64
	failed   int64
	what     string        // what failed, and how many of each
	p99      time.Duration // of the correct answers
	peakRSS  int64         // KiB, the gateway's
	took     time.Duration
	note     string // the scenario's own measure (recovery time, 504 timing, ...)
	passed   bool
}

var (
	rowsMu sync.Mutex
	rows   []row
)

// report adds r to the table and prints its line when the scenario ends, with its verdict
// (the scenario's assertions come after the call).
func report(t *testing.T, r row) {
	t.Helper()
	rowsMu.Lock()
	i := len(rows)
	rows = append(rows, r)
	rowsMu.Unlock()
	t.Cleanup(func() {
		rowsMu.Lock()
		rows[i].passed = !t.Failed()
		line := rows[i].line()
		rowsMu.Unlock()
		t.Logf("chaos: %s", line)
	})
}

func (r row) line() string {
	verdict := "ok"
	if !r.passed {
		verdict = "FAIL"
	}
	return fmt.Sprintf("%-4s %-22s sent %d ok %d failed %d (%s) p99 %s peak RSS %s in %s; %s",
		verdict, r.name, r.sent, r.ok, r.failed, orDash(r.what), ms(r.p99), mib(r.peakRSS), r.took.Round(100*time.Millisecond), r.note)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func mib(kib int64) string {
	if kib == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// table renders the rows as a Markdown table.
func table(rs []row) string {
	var b strings.Builder
	b.WriteString("| scenario | sent | ok | failed | what failed | p99 | peak gateway RSS | measured | |\n")
	b.WriteString("|---|---:|---:|---:|---|---:|---:|---|---|\n")
	for _, r := range rs {
		verdict := "pass"
		if !r.passed {
			verdict = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %s | %s | %s | %s |\n",
			r.name, r.sent, r.ok, r.failed, orDash(r.what), ms(r.p99), mib(r.peakRSS), r.note, verdict)
	}
	return b.String()
}

// TestChaos runs every scenario, one after the other (their figures would disturb each
// other), and prints and writes the table.
func TestChaos(t *testing.T) {
	needPython(t)
	start := time.Now()
	t.Cleanup(func() {
		rowsMu.Lock()
		defer rowsMu.Unlock()
		if len(rows) == 0 {
			return
		}
		out := table(rows)
		t.Logf("chaos: %d scenarios in %s\n%s", len(rows), time.Since(start).Round(time.Second), out)
		path := os.Getenv("CHAOS_OUT")
		if path == "" {
			dir, err := os.MkdirTemp("", "wsgi-fcgi-chaos-")
			if err != nil {
				t.Errorf("results: %v", err)
				return
			}
			path = filepath.Join(dir, "results.md")
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Errorf("write the results: %v", err)
			return
		}
		t.Logf("chaos: table written to %s", path)
	})
	for _, s := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"kill-workers", testKillWorkers},
		{"reload-x5", testReload},
		{"reload-broken", testReloadBroken},
		{"sigterm", testSIGTERM},
		{"hang", testHang},
		{"leak", testLeak},
		{"drops", testDrops},
		{"leavers", testLeavers},
		{"overload", testOverload},
		{"malformed", testMalformed},
		{"idle-conns", testIdleConns},
		{"web-server-addrs", testWebServerAddrs},
		{"header-injection", testHeaderInjection},
		{"httpoxy", testHTTPoxy},
		{"oversized", testOversized},
		{"soak", testSoak},
	} {
		t.Run(s.name, s.run)
	}
}
