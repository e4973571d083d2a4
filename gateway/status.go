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
	"strconv"
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

	Processes []ProcessStatus // with "full"
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

// writeStatus writes the CGI response of the status page.
func writeStatus(w io.Writer, s Status, format statusFormat, full bool, now time.Time) {
	var ctype string
	var body []byte
	switch format {
	case statusJSON:
		ctype, body = "application/json", statusJSONBody(s, full, now)
	case statusOpenMetrics:
		ctype, body = "text/plain; version=0.0.4; charset=utf-8", statusMetricsBody(s)
	default:
		ctype, body = "text/plain; charset=utf-8", statusTextBody(s, full, now)
	}
	fmt.Fprintf(w, "Status: 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n"+
		"Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\nCache-Control: no-cache, no-store, must-revalidate, max-age=0\r\n\r\n", ctype, len(body))
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
		MaxChildrenReached: s.MaxChildrenReached, SlowRequests: s.SlowRequests,
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

// statusMetricsBody is the Prometheus text exposition format (what ?openmetrics asks php-fpm
// for, written so that promtool check metrics finds nothing to fix): php-fpm's metric names
// under a wsgi_fcgi_ prefix, counters ending in _total.
func statusMetricsBody(s Status) []byte {
	var b strings.Builder
	metric := func(name, typ, help string, v float64) {
		name = "wsgi_fcgi_" + name
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s{pool=%s} %s\n", name, help, name, typ, name,
			strconv.Quote(s.Pool), strconv.FormatFloat(v, 'f', -1, 64))
	}
	metric("up", "gauge", "Whether the pool answered.", 1)
	metric("start_time_seconds", "gauge", "When the gateway started, in Unix seconds.", float64(s.StartTime.Unix()))
	metric("accepted_connections_total", "counter", "Requests accepted.", float64(s.AcceptedConn))
	metric("listen_queue", "gauge", "Requests waiting for a free worker.", float64(s.ListenQueue))
	metric("max_listen_queue", "gauge", "Most requests ever waiting for a free worker.", float64(s.MaxListenQueue))
	metric("listen_queue_length", "gauge", "Size of the queue of requests waiting for a worker.", float64(s.ListenQueueLen))
	metric("idle_processes", "gauge", "Idle workers.", float64(s.IdleProcesses))
	metric("active_processes", "gauge", "Workers serving a request.", float64(s.ActiveProcesses))
	metric("total_processes", "gauge", "Workers, idle and active.", float64(s.TotalProcesses))
	metric("max_active_processes", "gauge", "Most workers ever active at once.", float64(s.MaxActiveProcesses))
	metric("max_children_reached_total", "counter", "Times a request found every worker busy at the maximum.", float64(s.MaxChildrenReached))
	metric("slow_requests_total", "counter", "Requests that passed the slow-request threshold.", float64(s.SlowRequests))
	return []byte(b.String())
}
