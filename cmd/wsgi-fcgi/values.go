//go:build linux

// values.go: the kinds of value a setting takes, each read the same way from a flag and from
// its environment variable: durations (a bare number is seconds), sizes (base 1024),
// switches (true/false, 1/0, yes/no, on/off), whole numbers and text. Each kind says what
// it accepts, for the one-line error a bad value gets.

package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// settingValue is a setting's value as the command line and the environment set it.
type settingValue interface {
	// Set parses s and stores it.
	Set(s string) error
	// String is the value as a user writes it.
	String() string
	// accepts describes the values Set takes, and gives one of them as an example.
	accepts() (want, example string)
}

// switchValue is a settingValue that may stand alone on the command line (--preload), meaning
// true.
type switchValue interface {
	settingValue
	IsBoolFlag() bool
}

// errBadValue is what every Set returns for a value it refuses; the caller names the setting,
// the value and what accepts says.
var errBadValue = errors.New("invalid value")

// Duration is a length of time: a bare number of seconds (30, 1.5), as gunicorn, uWSGI and
// php-fpm read them, or a Go duration (500ms, 1m30s). Never negative.
type Duration time.Duration

// maxSeconds is the longest duration in whole seconds: time.Duration's range.
const maxSeconds = float64(math.MaxInt64 / int64(time.Second))

// Set parses s.
func (d *Duration) Set(s string) error {
	s = strings.TrimSpace(s)
	if isDecimal(s) {
		secs, err := strconv.ParseFloat(s, 64)
		if err != nil || secs > maxSeconds {
			return errBadValue
		}
		*d = Duration(math.Round(secs * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return errBadValue
	}
	*d = Duration(v)
	return nil
}

// Decode parses s for envconfig.
func (d *Duration) Decode(s string) error { return d.Set(s) }

// String writes d as a user would: 30s, 1m30s, 1h, 500ms, 0.
func (d *Duration) String() string { return formatDuration(time.Duration(*d)) }

func (*Duration) accepts() (string, string) {
	return "seconds (30, 1.5) or a duration with a unit (500ms, 30s, 1m30s)", "30"
}

// formatDuration is time.Duration's String without the zero units it trails: 1h, not 1h0m0s.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// isDecimal reports whether s is digits with at most one decimal point: 30, 1.5, .5.
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// ByteSize is a size in bytes: a number of bytes, or a number and a unit. Every unit is a
// power of 1024, as nginx and php-fpm read them, whatever its spelling and case: k, kb and
// KiB are 1024 bytes; m, mb, MiB 1024²; g, gb, GiB 1024³; t, tb, TiB 1024⁴. A unit allows a
// fraction: 1.5GiB.
type ByteSize int64

// byteUnits maps a unit, lower-cased, to its multiple.
func byteUnit(u string) (int64, bool) {
	switch strings.ToLower(u) {
	case "", "b":
		return 1, true
	case "k", "kb", "kib":
		return 1 << 10, true
	case "m", "mb", "mib":
		return 1 << 20, true
	case "g", "gb", "gib":
		return 1 << 30, true
	case "t", "tb", "tib":
		return 1 << 40, true
	}
	return 0, false
}

// Set parses s.
func (b *ByteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	mult, ok := byteUnit(unit)
	if !ok || !isDecimal(num) {
		return errBadValue
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return errBadValue
		}
		*b = ByteSize(n * mult)
		return nil
	}
	f, err := strconv.ParseFloat(num, 64)
	size := math.Round(f * float64(mult))
	if err != nil || mult == 1 || size >= math.MaxInt64 {
		return errBadValue // a fraction of a byte
	}
	*b = ByteSize(size)
	return nil
}

// Decode parses s for envconfig.
func (b *ByteSize) Decode(s string) error { return b.Set(s) }

// String writes b in the largest unit that divides it: 1GiB, 512KiB, 1000.
func (b *ByteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func (*ByteSize) accepts() (string, string) {
	return "bytes, or a number and a unit, all base 1024 (512k, 10MB, 100MiB, 1.5GiB)", "100MiB"
}

// Bool is a switch: true, false, 1, 0, yes, no, on or off, in any case.
type Bool bool

// parseBool reads the spellings of a switch.
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return false, false
}

// Set parses s.
func (b *Bool) Set(s string) error {
	v, ok := parseBool(s)
	if !ok {
		return errBadValue
	}
	*b = Bool(v)
	return nil
}

// Decode parses s for envconfig.
func (b *Bool) Decode(s string) error { return b.Set(s) }

func (b *Bool) String() string { return strconv.FormatBool(bool(*b)) }

// IsBoolFlag lets the flag stand alone, meaning true.
func (*Bool) IsBoolFlag() bool { return true }

func (*Bool) accepts() (string, string) { return "true, false, 1, 0, yes, no, on or off", "true" }

// intValue is a whole-number setting. It reads numbers as envconfig does (strconv.ParseInt
// with base 0), so the flag and the variable agree.
type intValue struct{ p *int }

func (v intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return errBadValue
	}
	*v.p = int(n)
	return nil
}

func (v intValue) String() string { return strconv.Itoa(*v.p) }

func (intValue) accepts() (string, string) { return "a whole number", "4" }

// stringValue is a text setting: every value is accepted here, and checked by validate.
type stringValue struct{ p *string }

func (v stringValue) Set(s string) error { *v.p = s; return nil }
func (v stringValue) String() string     { return *v.p }
func (stringValue) accepts() (string, string) {
	return "text", "x"
}

// asValue makes a settingValue of a pointer to a Config field. A field of another type is a
// mistake in the settings table, found by any test that loads the settings.
func asValue(p any) settingValue {
	switch v := p.(type) {
	case settingValue:
		return v
	case *string:
		return stringValue{v}
	case *int:
		return intValue{v}
	}
	panic(fmt.Sprintf("setting of type %T: use string, int, Bool, Duration, ByteSize or a settingValue", p))
}

// SendAhead is --send-ahead: how many requests may be sent ahead behind each worker's, 0 for
// none. It reads a switch (true: pyrunner.DefaultSendAheadDepth) or a number.
type SendAhead int

// Set parses s.
func (a *SendAhead) Set(s string) error {
	s = strings.TrimSpace(s)
	if on, ok := parseBool(s); ok && s != "1" && s != "0" {
		*a = 0
		if on {
			*a = pyrunner.DefaultSendAheadDepth
		}
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > pyrunner.MaxSendAheadDepth {
		return errBadValue
	}
	*a = SendAhead(n)
	return nil
}

// Decode parses s for envconfig.
func (a *SendAhead) Decode(s string) error { return a.Set(s) }

func (a *SendAhead) String() string {
	if *a == 0 {
		return "false"
	}
	return strconv.Itoa(int(*a))
}

// IsBoolFlag lets --send-ahead stand alone, meaning true.
func (*SendAhead) IsBoolFlag() bool { return true }

func (*SendAhead) accepts() (string, string) {
	return fmt.Sprintf("true (%d per worker), false, or 0 to %d requests per worker", pyrunner.DefaultSendAheadDepth, pyrunner.MaxSendAheadDepth), "4"
}

// Priority is --priority: a nice value for the gateway's threads, or unset (the zero value)
// to leave the one it was started with.
type Priority struct {
	Nice  int
	Given bool
}

// Set parses s: a nice value from -20 to 19, or "" for unset.
func (p *Priority) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		*p = Priority{}
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < -20 || n > 19 {
		return errBadValue
	}
	*p = Priority{Nice: n, Given: true}
	return nil
}

// Decode parses s for envconfig.
func (p *Priority) Decode(s string) error { return p.Set(s) }

func (p *Priority) String() string {
	if !p.Given {
		return ""
	}
	return strconv.Itoa(p.Nice)
}

func (*Priority) accepts() (string, string) { return "a nice value from -20 to 19", "10" }
