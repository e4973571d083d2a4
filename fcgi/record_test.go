package fcgi

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRecordEncoding(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{
			"header",
			appendHeader(nil, typeStdout, 0x0102, 0x0304),
			[]byte{1, 6, 1, 2, 3, 4, 0, 0},
		},
		{
			"end request",
			appendEndRequest(nil, 1, 0x0a0b0c0d, statusUnknownRole),
			[]byte{1, 3, 0, 1, 0, 8, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 3, 0, 0, 0},
		},
		{
			"unknown type",
			appendUnknownType(nil, 42),
			[]byte{1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0},
		},
		{
			"end request matches makeRecord",
			appendEndRequest(nil, 7, 0, statusRequestComplete),
			makeRecord(typeEndRequest, 7, make([]byte, 8), 0),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Equal(tt.got, tt.want) {
				t.Errorf("got  % x\nwant % x", tt.got, tt.want)
			}
		})
	}
}

func TestHeaderDecode(t *testing.T) {
	var h header
	h.decode(makeRecord(typeStdin, 0xbeef, make([]byte, 300), 4))
	want := header{version: 1, typ: typeStdin, id: 0xbeef, contentLen: 300, paddingLen: 4}
	if h != want {
		t.Errorf("got %+v, want %+v", h, want)
	}
}

func TestPairEncoding(t *testing.T) {
	long := strings.Repeat("x", 128)
	tests := []struct {
		name        string
		pname, pval string
		want        []byte
	}{
		{"empty", "", "", []byte{0, 0}},
		{"11", "A", "bc", nameValuePair11("A", "bc")},
		{"127 is one byte", strings.Repeat("n", 127), "v", append([]byte{127, 1}, strings.Repeat("n", 127)+"v"...)},
		{"14", "N", long, append([]byte{1, 0x80, 0, 0, 128}, "N"+long...)},
		{"41", long, "V", append([]byte{0x80, 0, 0, 128, 1}, long+"V"...)},
		{"44", long, long, nameValuePair44(long, long)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendPair(nil, tt.pname, tt.pval)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got  % x\nwant % x", got, tt.want)
			}
		})
	}
}

func TestParamsParse(t *testing.T) {
	type pair struct{ name, value string }
	long := strings.Repeat("v", 200)
	tests := []struct {
		name    string
		in      []byte
		want    []pair
		wantErr bool
	}{
		{name: "empty", in: nil},
		{name: "11", in: nameValuePair11("A", "b"), want: []pair{{"A", "b"}}},
		{
			// A writer may use the 4-byte form for short lengths.
			name: "44 with short lengths",
			in:   nameValuePair44("SCRIPT_NAME", "/x"),
			want: []pair{{"SCRIPT_NAME", "/x"}},
		},
		{
			name: "mixed forms and empty value",
			in: bytes.Join([][]byte{
				nameValuePair11("REQUEST_METHOD", "GET"),
				appendPair(nil, "QUERY_STRING", long),
				nameValuePair11("EMPTY", ""),
				nameValuePair44("", "noname"),
			}, nil),
			want: []pair{{"REQUEST_METHOD", "GET"}, {"QUERY_STRING", long}, {"EMPTY", ""}, {"", "noname"}},
		},
		{name: "truncated name length", in: []byte{0x80, 0, 0}, wantErr: true},
		{name: "missing value length", in: []byte{1}, wantErr: true},
		{name: "truncated value length", in: []byte{1, 0x80, 0}, wantErr: true},
		{name: "name past end", in: []byte{5, 0, 'a', 'b'}, wantErr: true},
		{name: "value past end", in: []byte{1, 5, 'a', 'b'}, wantErr: true},
		{name: "huge lengths", in: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'a'}, wantErr: true},
		{name: "good then garbage", in: append(nameValuePair11("A", "b"), 3), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Params
			err := p.parse(tt.in, nil)
			if tt.wantErr {
				if !errors.Is(err, errMalformedPair) {
					t.Fatalf("err = %v, want errMalformedPair", err)
				}
				if p.Len() != 0 {
					t.Errorf("Len = %d after error", p.Len())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Len() != len(tt.want) {
				t.Fatalf("Len = %d, want %d", p.Len(), len(tt.want))
			}
			for i, w := range tt.want {
				n, v := p.At(i)
				if string(n) != w.name || string(v) != w.value {
					t.Errorf("At(%d) = %q, %q; want %q, %q", i, n, v, w.name, w.value)
				}
			}
			i := 0
			for n, v := range p.All() {
				if string(n) != tt.want[i].name || string(v) != tt.want[i].value {
					t.Errorf("All()[%d] = %q, %q", i, n, v)
				}
				i++
			}
		})
	}
}

func TestParamsGet(t *testing.T) {
	var p Params
	in := bytes.Join([][]byte{
		nameValuePair11("HTTP_X", "first"),
		nameValuePair11("HTTP_Y", "y"),
		nameValuePair11("HTTP_X", "second"),
	}, nil)
	if err := p.parse(in, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"HTTP_X", "first", true},
		{"HTTP_Y", "y", true},
		{"HTTP_Z", "", false},
		{"http_x", "", false},
	}
	for _, tt := range tests {
		v, ok := p.Get(tt.name)
		if string(v) != tt.want || ok != tt.ok {
			t.Errorf("Get(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.want, tt.ok)
		}
	}
	// Appending to a returned value must not clobber the next pair.
	v, _ := p.Get("HTTP_X")
	_ = append(v, "ZZZZ"...)
	if v, _ := p.Get("HTTP_Y"); string(v) != "y" {
		t.Errorf("append clobbered the next pair: %q", v)
	}
}
