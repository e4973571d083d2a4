package gateway

import "testing"

func TestForwarded(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.7,::1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name                   string
		trust                  TrustedProxies
		remote, proto, fwd, fh string
		wantRemote, wantScheme string
		wantHost               string
	}{
		{name: "untrusted peer: headers decide nothing", trust: trusted, remote: "203.0.113.5",
			proto: "https", fwd: "198.51.100.1", fh: "evil.example",
			wantRemote: "203.0.113.5", wantScheme: "http", wantHost: "app.example"},
		{name: "nothing trusted by default", remote: "10.1.2.3", proto: "https", fwd: "198.51.100.1",
			wantRemote: "10.1.2.3", wantScheme: "http", wantHost: "app.example"},
		{name: "trusted proxy", trust: trusted, remote: "10.1.2.3", proto: "https", fwd: "198.51.100.1", fh: "www.example:8443",
			wantRemote: "198.51.100.1", wantScheme: "https", wantHost: "www.example:8443"},
		{name: "chain: right-most untrusted hop", trust: trusted, remote: "192.0.2.7",
			fwd: "6.6.6.6, 198.51.100.1, 10.9.9.9", wantRemote: "198.51.100.1", wantScheme: "http", wantHost: "app.example"},
		{name: "spoofed left entries ignored", trust: trusted, remote: "10.1.2.3",
			fwd: "127.0.0.1, 198.51.100.1", wantRemote: "198.51.100.1", wantScheme: "http", wantHost: "app.example"},
		{name: "garbage hop stops the chain", trust: trusted, remote: "10.1.2.3",
			fwd: "198.51.100.1, not-an-ip", wantRemote: "10.1.2.3", wantScheme: "http", wantHost: "app.example"},
		{name: "odd proto ignored", trust: trusted, remote: "::1", proto: "gopher",
			wantRemote: "::1", wantScheme: "http", wantHost: "app.example"},
		{name: "last proto wins", trust: trusted, remote: "::1", proto: "http, HTTPS",
			wantRemote: "::1", wantScheme: "https", wantHost: "app.example"},
		{name: "host with URL syntax refused", trust: trusted, remote: "::1", fh: "evil.example/x@y",
			wantRemote: "::1", wantScheme: "http", wantHost: "app.example"},
		{name: "IPv4-mapped peer", trust: trusted, remote: "::ffff:10.0.0.1", proto: "https",
			wantRemote: "::ffff:10.0.0.1", wantScheme: "https", wantHost: "app.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c cgiRequest
			c.classify([]byte("REMOTE_ADDR"), []byte(tc.remote))
			c.classify([]byte("HTTP_HOST"), []byte("app.example"))
			for name, v := range map[string]string{"HTTP_X_FORWARDED_PROTO": tc.proto, "HTTP_X_FORWARDED_FOR": tc.fwd, "HTTP_X_FORWARDED_HOST": tc.fh} {
				if v != "" {
					c.classify([]byte(name), []byte(v))
				}
			}
			c.forwarded(tc.trust)
			if string(c.remoteAddr) != tc.wantRemote || c.urlScheme() != tc.wantScheme || string(c.host) != tc.wantHost {
				t.Errorf("got REMOTE_ADDR %q scheme %q host %q, want %q %q %q", c.remoteAddr, c.urlScheme(), c.host,
					tc.wantRemote, tc.wantScheme, tc.wantHost)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "example.com", "1.2.3"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	all, err := ParseTrustedProxies("*")
	if err != nil || !all.Contains([]byte("203.0.113.9")) {
		t.Errorf("* does not trust everything: %v", err)
	}
	none, _ := ParseTrustedProxies("")
	if !none.Empty() || none.Contains([]byte("127.0.0.1")) {
		t.Error("the empty list trusts something")
	}
}
