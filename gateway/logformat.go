// logformat.go: the access log's line formats: the presets "combined" and "json", a template
// of named fields ("{remote_addr} {request_id} {status}"), or a JSON object of chosen fields
// ("json:request_id,status,queue_wait"). Every value a request supplies is escaped, so that a
// request cannot forge a line or a field: \xHH in text (as nginx escapes), \u00HH in JSON.

package gateway

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// logField is one named value of an access log line.
type logField uint8

const (
	fieldLiteral     logField = iota // a template's literal text
	fieldTime                        // arrival, 21/Nov/2026:14:15:16 +0000
	fieldTimeISO8601                 // arrival, 2026-11-21T14:15:16.123456+00:00
	fieldRequestID
	fieldRemoteAddr
	fieldRemoteUser
	fieldHost
	fieldMethod
	fieldURI
	fieldProtocol
	fieldRequest // method URI protocol
	fieldStatus
	fieldBytesIn
	fieldBytesOut
	fieldReferer
	fieldUserAgent
	fieldQueueWait
	fieldAppTime
	fieldRequestTime
	fieldWorkerPID
	numFields
)

// fieldNames are the fields' names in templates and JSON keys; the order is the json
// preset's.
var fieldNames = [numFields]string{
	fieldTime: "time", fieldTimeISO8601: "time_iso8601", fieldRequestID: "request_id",
	fieldRemoteAddr: "remote_addr", fieldRemoteUser: "remote_user", fieldHost: "host",
	fieldMethod: "method", fieldURI: "uri", fieldProtocol: "protocol", fieldRequest: "request",
	fieldStatus: "status", fieldBytesIn: "bytes_in", fieldBytesOut: "bytes_out",
	fieldReferer: "referer", fieldUserAgent: "user_agent", fieldQueueWait: "queue_wait",
	fieldAppTime: "app_time", fieldRequestTime: "request_time", fieldWorkerPID: "worker_pid",
}

// combinedTemplate is the combined format of Apache and nginx, then the total time, the
// request id and the queue wait.
const combinedTemplate = `{remote_addr} - {remote_user} [{time}] "{request}" {status} {bytes_out} "{referer}" "{user_agent}" {request_time} {request_id} {queue_wait}`

// jsonPreset lists the json preset's fields.
var jsonPreset = []logField{fieldTime, fieldRequestID, fieldRemoteAddr, fieldRemoteUser, fieldHost,
	fieldMethod, fieldURI, fieldProtocol, fieldStatus, fieldBytesIn, fieldBytesOut, fieldReferer, fieldUserAgent,
	fieldQueueWait, fieldAppTime, fieldRequestTime, fieldWorkerPID}

// logSegment is a piece of a template: literal text, or a field.
type logSegment struct {
	field   logField
	literal string
}

// AccessLogFormat is a parsed access log format; ParseAccessLogFormat makes one.
type AccessLogFormat struct {
	json bool
	segs []logSegment // fields only, for json
}

// ParseAccessLogFormat reads an access log format: "combined", "json", "json:" and a
// comma-separated list of fields, or a template in which {name} stands for a field and {{
// for a brace. It fails on an unknown field, and on a template without any field.
func ParseAccessLogFormat(s string) (*AccessLogFormat, error) {
	switch {
	case s == "combined":
		return ParseAccessLogFormat(combinedTemplate)
	case s == "json":
		f := &AccessLogFormat{json: true}
		for _, fl := range jsonPreset {
			f.segs = append(f.segs, logSegment{field: fl})
		}
		return f, nil
	case strings.HasPrefix(s, "json:"):
		f := &AccessLogFormat{json: true}
		for _, name := range strings.Split(s[len("json:"):], ",") {
			fl, err := lookupField(strings.TrimSpace(name))
			if err != nil {
				return nil, err
			}
			f.segs = append(f.segs, logSegment{field: fl})
		}
		return f, nil
	}
	return parseTemplate(s)
}

// parseTemplate reads a text template.
func parseTemplate(s string) (*AccessLogFormat, error) {
	f := &AccessLogFormat{}
	var lit strings.Builder
	fields := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '{' {
			lit.WriteByte(c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '{' {
			lit.WriteByte('{')
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("access log format %q: %q has no closing }", s, s[i:])
		}
		fl, err := lookupField(s[i+1 : i+end])
		if err != nil {
			return nil, err
		}
		if lit.Len() > 0 {
			f.segs = append(f.segs, logSegment{literal: lit.String()})
			lit.Reset()
		}
		f.segs = append(f.segs, logSegment{field: fl})
		fields++
		i += end
	}
	if lit.Len() > 0 {
		f.segs = append(f.segs, logSegment{literal: lit.String()})
	}
	if fields == 0 {
		return nil, fmt.Errorf("access log format %q: want combined, json, json:FIELD,... or a template with {FIELD}s (fields: %s)",
			s, strings.Join(fieldNames[1:], ", "))
	}
	return f, nil
}

func lookupField(name string) (logField, error) {
	for i, n := range fieldNames {
		if i != int(fieldLiteral) && n == name {
			return logField(i), nil
		}
	}
	return 0, fmt.Errorf("access log format: unknown field %q (fields: %s)", name, strings.Join(fieldNames[1:], ", "))
}

// accessEntry is what one line says about a request. The byte slices point into the
// request's params; nothing is copied.
type accessEntry struct {
	start     time.Time // arrival in the gateway
	id        []byte
	remote    []byte
	user      []byte
	host      []byte
	method    []byte
	uri       []byte
	protocol  []byte
	status    int
	bytesIn   int64
	bytesOut  int64
	referer   []byte
	userAgent []byte
	workerPID int
	// queueWait is from the start of the wait (X-Request-Start or arrival) to a worker
	// starting the request; appTime from then to its end; total from the start of the wait
	// to the end. hasQueue and hasApp say which apply.
	queueWait, appTime, total time.Duration
	hasQueue, hasApp          bool
}

// appendLine appends e's line, with its newline.
func (f *AccessLogFormat) appendLine(b []byte, e *accessEntry) []byte {
	if f.json {
		b = append(b, '{')
		for i, s := range f.segs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, fieldNames[s.field]...)
			b = append(b, '"', ':')
			b = appendJSONField(b, s.field, e)
		}
		return append(b, '}', '\n')
	}
	for _, s := range f.segs {
		if s.field == fieldLiteral {
			b = append(b, s.literal...)
			continue
		}
		b = appendTextField(b, s.field, e)
	}
	return append(b, '\n')
}

// fieldBytes is the value of a field held as bytes from the request; ok is false for the
// others.
func fieldBytes(fl logField, e *accessEntry) (v []byte, ok bool) {
	switch fl {
	case fieldRequestID:
		return e.id, true
	case fieldRemoteAddr:
		return e.remote, true
	case fieldRemoteUser:
		return e.user, true
	case fieldHost:
		return e.host, true
	case fieldMethod:
		return e.method, true
	case fieldURI:
		return e.uri, true
	case fieldProtocol:
		return e.protocol, true
	case fieldReferer:
		return e.referer, true
	case fieldUserAgent:
		return e.userAgent, true
	}
	return nil, false
}

// appendTextField appends a field as text: request bytes escaped, "-" for an empty value or
// a time that does not apply.
func appendTextField(b []byte, fl logField, e *accessEntry) []byte {
	if v, ok := fieldBytes(fl, e); ok {
		if len(v) == 0 {
			return append(b, '-')
		}
		return appendEscaped(b, v)
	}
	switch fl {
	case fieldTime:
		return e.start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	case fieldTimeISO8601:
		return e.start.AppendFormat(b, iso8601Micro)
	case fieldRequest:
		b = appendEscaped(b, e.method)
		b = append(b, ' ')
		b = appendEscaped(b, e.uri)
		b = append(b, ' ')
		return appendEscaped(b, e.protocol)
	case fieldStatus:
		return strconv.AppendInt(b, int64(e.status), 10)
	case fieldBytesIn:
		return strconv.AppendInt(b, e.bytesIn, 10)
	case fieldBytesOut:
		return strconv.AppendInt(b, e.bytesOut, 10)
	case fieldWorkerPID:
		if e.workerPID == 0 {
			return append(b, '-')
		}
		return strconv.AppendInt(b, int64(e.workerPID), 10)
	}
	d, ok := fieldDuration(fl, e)
	if !ok {
		return append(b, '-')
	}
	return appendSeconds(b, d)
}

// fieldDuration is a time field's value; ok is false when it does not apply (no queue for
// the gateway's own pages, no app time for a request no worker started).
func fieldDuration(fl logField, e *accessEntry) (time.Duration, bool) {
	switch fl {
	case fieldQueueWait:
		return e.queueWait, e.hasQueue
	case fieldAppTime:
		return e.appTime, e.hasApp
	}
	return e.total, true
}

// appendJSONField appends a field as a JSON value: strings for the request's bytes and the
// time, numbers for the rest; null for a time that does not apply.
func appendJSONField(b []byte, fl logField, e *accessEntry) []byte {
	if v, ok := fieldBytes(fl, e); ok {
		return appendJSONString(b, v)
	}
	switch fl {
	case fieldTime, fieldTimeISO8601:
		b = append(b, '"')
		b = e.start.AppendFormat(b, iso8601Micro)
		return append(b, '"')
	case fieldRequest:
		b = append(b, '"')
		b = appendJSONBytes(b, e.method)
		b = append(b, ' ')
		b = appendJSONBytes(b, e.uri)
		b = append(b, ' ')
		b = appendJSONBytes(b, e.protocol)
		return append(b, '"')
	case fieldStatus:
		return strconv.AppendInt(b, int64(e.status), 10)
	case fieldBytesIn:
		return strconv.AppendInt(b, e.bytesIn, 10)
	case fieldBytesOut:
		return strconv.AppendInt(b, e.bytesOut, 10)
	case fieldWorkerPID:
		return strconv.AppendInt(b, int64(e.workerPID), 10)
	}
	d, ok := fieldDuration(fl, e)
	if !ok {
		return append(b, "null"...)
	}
	return appendSeconds(b, d)
}

const iso8601Micro = "2006-01-02T15:04:05.000000Z07:00"

// appendSeconds appends d in seconds with six decimals.
func appendSeconds(b []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	us := d.Microseconds()
	b = strconv.AppendInt(b, us/1e6, 10)
	b = append(b, '.')
	frac := us % 1e6
	for div := int64(1e5); div > 0; div /= 10 {
		b = append(b, byte('0'+frac/div%10))
	}
	return b
}

// appendJSONString appends v as a JSON string.
func appendJSONString(b, v []byte) []byte {
	b = append(b, '"')
	b = appendJSONBytes(b, v)
	return append(b, '"')
}

// appendJSONBytes appends v escaped for the inside of a JSON string. The bytes are latin-1,
// as the app sees them (PEP 3333): a byte above 0x7E, like a control byte, becomes \u00HH,
// so that the line is valid UTF-8 and says exactly which bytes came.
func appendJSONBytes(b, v []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range v {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendEscaped copies v, escaping what would let a client forge a log line or a field: quotes,
// backslashes, control and non-ASCII bytes become \xHH (as nginx escapes them).
func appendEscaped(b, v []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}
