package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type fakeStatus struct{ s Status }

func (f fakeStatus) Status(full bool) Status {
	s := f.s
	if !full {
		s.Processes = nil
	}
	return s
}

func sampleStatus() Status {
	start := time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
	return Status{
		Pool: "www", ProcessManager: "static", StartTime: start, AcceptedConn: 42, ListenQueue: 1,
		MaxListenQueue: 3, ListenQueueLen: 1024, IdleProcesses: 1, ActiveProcesses: 1, TotalProcesses: 2,
		MaxActiveProcesses: 2, MaxChildrenReached: 5, SlowRequests: 0,
		Processes: []ProcessStatus{
			{PID: 100, State: "Running", StartTime: start, Requests: 7, RequestDuration: 1500 * time.Microsecond,
				RequestMethod: "GET", RequestURI: "/x?y=1", RSS: 30 << 20},
			{PID: 101, State: "Idle", StartTime: start, Requests: 9},
		},
	}
}

func TestStatusFormats(t *testing.T) {
	now := sampleStatus().StartTime.Add(90 * time.Second)
	cases := []struct {
		query  string
		format statusFormat
		full   bool
	}{
		{"", statusPlain, false}, {"full", statusPlain, true}, {"json", statusJSON, false},
		{"json&full", statusJSON, true}, {"openmetrics", statusOpenMetrics, false},
	}
	for _, tc := range cases {
		f, full := parseStatusQuery(tc.query)
		if f != tc.format || full != tc.full {
			t.Errorf("query %q: format %v full %v", tc.query, f, full)
		}
	}

	text := string(statusTextBody(sampleStatus(), true, now))
	for _, want := range []string{"pool:                 www\n", "start since:          90\n", "accepted conn:        42\n",
		"max children reached: 5\n", "pid:                  100\n", "request duration:     1500\n", "request URI:          /x?y=1\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("text status lacks %q:\n%s", want, text)
		}
	}

	var j map[string]any
	if err := json.Unmarshal(statusJSONBody(sampleStatus(), true, now), &j); err != nil {
		t.Fatal(err)
	}
	if j["accepted conn"] != 42.0 || j["start time"] != float64(sampleStatus().StartTime.Unix()) || j["process manager"] != "static" {
		t.Errorf("JSON status: %v", j)
	}
	procs := j["processes"].([]any)
	if len(procs) != 2 || procs[0].(map[string]any)["request duration"] != 1500.0 {
		t.Errorf("JSON processes: %v", procs)
	}
}

func TestStatusPage(t *testing.T) {
	sock := serveTestApp(t, Options{StatusPath: "/fcgi-status", Status: fakeStatus{sampleStatus()}, PoolName: "site"})
	rec := do(t, sock, baseParams(map[string]string{"SCRIPT_NAME": "/fcgi-status", "REQUEST_URI": "/fcgi-status?json", "QUERY_STRING": "json"}), nil)
	var j map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &j); err != nil || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q %v: %s", rec.Code, rec.Header().Get("Content-Type"), err, rec.Body)
	}
	// The gateway fills in its own numbers: the pool's name and the requests it accepted.
	if j["pool"] != "site" || j["accepted conn"] != 1.0 {
		t.Errorf("status page: %v", j)
	}
	if _, ok := j["processes"]; ok {
		t.Error("processes listed without ?full")
	}
}
