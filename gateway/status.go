// status.go: the status page (--status-path), like php-fpm's pm.status_path: the pool's
// numbers as text, JSON with php-fpm's field names and shapes (so php-fpm exporters and
// dashboards read it unchanged), or Prometheus metrics (?openmetrics, php-fpm's word for it);
// "full" adds a row per worker.

package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// Status is what the status page shows. The field comments give php-fpm's name for each.
type Status struct {
	Pool           string    // "pool"
	ProcessManager string    // "process manager": static, dynamic or ondemand
	StartTime      time.Time // "start time"
	AcceptedConn   uint64    // "accepted conn": requests accepted
	// The queue is the gateway's wait for a free worker (what php-fpm's listen queue measures:
	// requests no worker has taken yet).
	ListenQueue        int    // "listen queue": requests waiting now
	MaxListenQueue     int    // "max listen queue": most ever waiting
	ListenQueueLen     int    // "listen queue len": the queue's size (--queue-size)
	IdleProcesses      int    // "idle processes"
	ActiveProcesses    int    // "active processes"
	TotalProcesses     int    // "total processes"
	MaxActiveProcesses int    // "max active processes"
	MaxChildrenReached uint64 // "max children reached": times a request found every worker busy at the maximum
	SlowRequests       uint64 // "slow requests"
	// MemoryPeak is php-fpm 8.4's "memory peak": here the highest peak resident memory
	// (VmHWM) of any worker process, in bytes, as read when the status is asked for.
	MemoryPeak int64

	Processes []ProcessStatus // with "full"

	// For the metrics only.
	Starting, Draining         int    // workers (threads) starting, and retired and finishing
	HardTimeouts, SoftTimeouts uint64 // requests stopped at --timeout, at --soft-timeout
	WorkerExits                []ExitCount
	Reloads, FailedReloads     uint64
	MaxRSS                     int64 // the --max-rss limit (0: none)
}

// ExitCount is how many worker processes ended for one cause.
type ExitCount struct {
	Cause string
	Count uint64
}

// ProcessStatus is one worker's row on the full status page.
type ProcessStatus struct {
	PID             int           // "pid"
	State           string        // "state": Idle, Running, Starting, Finishing
	StartTime       time.Time     // "start time"
	Requests        uint64        // "requests": served by this worker
	RequestDuration time.Duration // "request duration": of the current or last request
	RequestMethod   string        // "request method"
	RequestURI      string        // "request uri"
	ContentLength   int64         // "content length"
	RSS             int64         // "last request memory": the worker's resident memory, bytes
}

// StatusSource supplies the status page's numbers; full asks for the per-worker rows too.
type StatusSource interface {
	Status(full bool) Status
}

// statusFormat is what the query string asks for.
type statusFormat int

const (
	statusPlain statusFormat = iota
	statusJSON
	statusOpenMetrics
)

// parseStatusQuery reads php-fpm's query words: json, openmetrics (else text), full.
func parseStatusQuery(q string) (statusFormat, bool) {
	v, _ := url.ParseQuery(q)
	_, full := v["full"]
	switch {
	case has(v, "json"):
		return statusJSON, full
	case has(v, "openmetrics"):
		return statusOpenMetrics, full
	}
	return statusPlain, full
}

func has(v url.Values, k string) bool { _, ok := v[k]; return ok }

// writeStatus writes the CGI response of the status page in php-fpm's text or JSON; extra
// holds more header lines.
func writeStatus(w io.Writer, s Status, format statusFormat, full bool, now time.Time, extra string) {
	if format == statusJSON {
		writeStatusBody(w, "application/json", statusJSONBody(s, full, now), extra)
		return
	}
	writeStatusBody(w, "text/plain; charset=utf-8", statusTextBody(s, full, now), extra)
}

// writeStatusBody writes a status page response: body, of type ctype, not to be cached;
// extra holds more header lines.
func writeStatusBody(w io.Writer, ctype string, body []byte, extra string) {
	fmt.Fprintf(w, "Status: 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s"+
		"Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\nCache-Control: no-cache, no-store, must-revalidate, max-age=0\r\n\r\n", ctype, len(body), extra)
	w.Write(body)
}

const phpfpmTime = "02/Jan/2006:15:04:05 -0700"

func since(t, now time.Time) int64 { return int64(now.Sub(t) / time.Second) }

func statusTextBody(s Status, full bool, now time.Time) []byte {
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%-22s%v\n", k+":", v) }
	line("pool", s.Pool)
	line("process manager", s.ProcessManager)
	line("start time", s.StartTime.Format(phpfpmTime))
	line("start since", since(s.StartTime, now))
	line("accepted conn", s.AcceptedConn)
	line("listen queue", s.ListenQueue)
	line("max listen queue", s.MaxListenQueue)
	line("listen queue len", s.ListenQueueLen)
	line("idle processes", s.IdleProcesses)
	line("active processes", s.ActiveProcesses)
	line("total processes", s.TotalProcesses)
	line("max active processes", s.MaxActiveProcesses)
	line("max children reached", s.MaxChildrenReached)
	line("slow requests", s.SlowRequests)
	line("memory peak", s.MemoryPeak)
	if full {
		for _, p := range s.Processes {
			b.WriteString("\n************************\n")
			line("pid", p.PID)
			line("state", p.State)
			line("start time", p.StartTime.Format(phpfpmTime))
			line("start since", since(p.StartTime, now))
			line("requests", p.Requests)
			line("request duration", p.RequestDuration.Microseconds())
			line("request method", orDashString(p.RequestMethod))
			line("request URI", orDashString(p.RequestURI))
			line("content length", p.ContentLength)
			line("user", "-")
			line("script", "-")
			line("last request cpu", "0.00")
			line("last request memory", p.RSS)
		}
	}
	return []byte(b.String())
}

func orDashString(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// phpfpmJSON and phpfpmProcess have php-fpm's JSON field names and types: times are Unix
// seconds, durations microseconds.
type phpfpmJSON struct {
	Pool               string          `json:"pool"`
	ProcessManager     string          `json:"process manager"`
	StartTime          int64           `json:"start time"`
	StartSince         int64           `json:"start since"`
	AcceptedConn       uint64          `json:"accepted conn"`
	ListenQueue        int             `json:"listen queue"`
	MaxListenQueue     int             `json:"max listen queue"`
	ListenQueueLen     int             `json:"listen queue len"`
	IdleProcesses      int             `json:"idle processes"`
	ActiveProcesses    int             `json:"active processes"`
	TotalProcesses     int             `json:"total processes"`
	MaxActiveProcesses int             `json:"max active processes"`
	MaxChildrenReached uint64          `json:"max children reached"`
	SlowRequests       uint64          `json:"slow requests"`
	MemoryPeak         int64           `json:"memory peak"`
	Processes          []phpfpmProcess `json:"processes,omitempty"`
}

type phpfpmProcess struct {
	PID               int     `json:"pid"`
	State             string  `json:"state"`
	StartTime         int64   `json:"start time"`
	StartSince        int64   `json:"start since"`
	Requests          uint64  `json:"requests"`
	RequestDuration   int64   `json:"request duration"`
	RequestMethod     string  `json:"request method"`
	RequestURI        string  `json:"request uri"`
	ContentLength     int64   `json:"content length"`
	User              string  `json:"user"`
	Script            string  `json:"script"`
	LastRequestCPU    float64 `json:"last request cpu"`
	LastRequestMemory int64   `json:"last request memory"`
}

func statusJSONBody(s Status, full bool, now time.Time) []byte {
	j := phpfpmJSON{
		Pool: s.Pool, ProcessManager: s.ProcessManager, StartTime: s.StartTime.Unix(), StartSince: since(s.StartTime, now),
		AcceptedConn: s.AcceptedConn, ListenQueue: s.ListenQueue, MaxListenQueue: s.MaxListenQueue,
		ListenQueueLen: s.ListenQueueLen, IdleProcesses: s.IdleProcesses, ActiveProcesses: s.ActiveProcesses,
		TotalProcesses: s.TotalProcesses, MaxActiveProcesses: s.MaxActiveProcesses,
		MaxChildrenReached: s.MaxChildrenReached, SlowRequests: s.SlowRequests, MemoryPeak: s.MemoryPeak,
	}
	if full {
		j.Processes = make([]phpfpmProcess, 0, len(s.Processes))
		for _, p := range s.Processes {
			j.Processes = append(j.Processes, phpfpmProcess{
				PID: p.PID, State: p.State, StartTime: p.StartTime.Unix(), StartSince: since(p.StartTime, now),
				Requests: p.Requests, RequestDuration: p.RequestDuration.Microseconds(),
				RequestMethod: orDashString(p.RequestMethod), RequestURI: orDashString(p.RequestURI),
				ContentLength: p.ContentLength, User: "-", Script: "-", LastRequestMemory: p.RSS,
			})
		}
	}
	b, _ := json.Marshal(j)
	return b
}
