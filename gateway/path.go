// path.go: SCRIPT_NAME and PATH_INFO from what the front end sent. Each front end gets them wrong
// in its own way (see derivePath); the rule below turns every known shape into what PEP 3333 and
// RFC 3875 section 4.1.13/4.1.5 mean: SCRIPT_NAME the URL prefix the app is mounted at (never
// ending in "/"), PATH_INFO the rest of the path, percent-decoded, as latin-1 bytes.

package gateway

import (
	"bytes"
	"path"
)

// pathInput is what the front end said about the request's path.
type pathInput struct {
	mount          []byte // --mount, normalised ("" or "/prefix")
	scriptName     []byte
	pathInfo       []byte
	requestURI     []byte // raw, with the query; nil when the front end sent none
	scriptFilename []byte
}

// pathResult is the split the app sees, with the name of the rule that produced it and, when
// the front end's values contradicted each other, a short description of the shape (for one
// warning per distinct shape).
type pathResult struct {
	script, path []byte
	rule         string
	conflict     string
}

// Rules, in the order derivePath tries them.
const (
	ruleSplit          = "split agrees with REQUEST_URI"
	ruleSplitDecoded   = "split agrees once PATH_INFO is percent-decoded (Apache proxy-fcgi-pathinfo)"
	ruleNoRequestURI   = "split taken as sent (no REQUEST_URI to check it against)"
	ruleFromRequestURI = "no SCRIPT_NAME or PATH_INFO: PATH_INFO is REQUEST_URI's path, decoded (mod_authnz_fcgi)"
	ruleScriptFile     = "script file name not in the URL dropped (mod_fcgid rewrite to app.fcgi)"
	ruleFileSystem     = "Apache's split at the end of the path on disk ignored (SetHandler proxy:fcgi)"
	ruleStripped       = "prefix stripped upstream restored to SCRIPT_NAME (Caddy handle_path)"
	ruleProxyPath      = "whole path in SCRIPT_NAME split at Apache's proxy:fcgi:// path"
	ruleWholePath      = "whole path in SCRIPT_NAME moved to PATH_INFO (nginx fastcgi_params, Apache ProxyPass /)"
	ruleConflict       = "front end's values disagree with REQUEST_URI: taken as sent"
	ruleMount          = "split at --mount"
	ruleMountConflict  = "request path outside --mount: SCRIPT_NAME empty"
	conflictMountShape = "path outside --mount"
)

// derivePath applies the rule documented in docs/frontends.md ("SCRIPT_NAME and PATH_INFO"):
//
//  1. Find the split the front end means. Apache's SetHandler "proxy:…" form splits where the
//     path stops existing under DocumentRoot (SCRIPT_FILENAME proxy:fcgi://host//docroot/app;
//     with proxy-fcgi-pathinfo PATH_INFO is that file name): that split says nothing about the
//     app, which is then at the root. A split whose SCRIPT_NAME+PATH_INFO agrees with the
//     decoded REQUEST_URI is trusted (nginx fastcgi_split_path_info, Caddy, Caddy split). Where
//     it agrees only once PATH_INFO is percent-decoded, PATH_INFO is decoded (Apache
//     proxy-fcgi-pathinfo=1, which also cuts SCRIPT_NAME short by the length the escapes add:
//     SCRIPT_NAME is then what precedes the decoded PATH_INFO in the URL). A script file name that the URL does not contain is dropped: mod_fcgid with a rewrite to
//     app.fcgi/$1 sends SCRIPT_NAME /app/app.fcgi for the URL /app/foo, and the app lives at
//     /app. A prefix stripped upstream (Caddy handle_path sends PATH_INFO /foo for /app/foo)
//     becomes SCRIPT_NAME. The whole path in SCRIPT_NAME with no PATH_INFO (nginx's stock
//     fastcgi_params, Apache ProxyPass) means the app is at the root: SCRIPT_NAME "" and
//     PATH_INFO the path — unless Apache's SCRIPT_FILENAME (proxy:fcgi://host:port/PATH) shows
//     that ProxyPass mapped a prefix away, which then is SCRIPT_NAME.
//  2. An explicit mount wins: the full path (both parts of the split) must start with it at a
//     "/" boundary and is split there; otherwise SCRIPT_NAME is "" and the conflict reported.
//
// PATH_INFO comes from the front end's decoded values, never rebuilt from the raw REQUEST_URI,
// which is only used to check and to recover a stripped prefix. A "%2F" the front end left
// encoded (Apache AllowEncodedSlashes NoDecode) is compared as such and stays in PATH_INFO.
func derivePath(in pathInput) pathResult {
	res := frontEndSplit(in)
	if len(in.mount) == 0 {
		return res
	}
	full := concat(res.script, res.path)
	if rest, ok := cutPrefixAtBoundary(full, in.mount); ok {
		return pathResult{script: in.mount, path: rest, rule: ruleMount, conflict: res.conflict}
	}
	return pathResult{path: full, rule: ruleMountConflict, conflict: conflictMountShape}
}

func frontEndSplit(in pathInput) pathResult {
	s, p := in.scriptName, in.pathInfo
	// Apache with AllowEncodedSlashes NoDecode keeps %2F encoded in what it decodes: compare
	// in that form then, and leave the %2F in PATH_INFO, where the app can tell it from "/".
	keep2F := hasEncodedSlash(s) || hasEncodedSlash(p)
	r, haveR := requestPath(in.requestURI, keep2F)

	if len(s) == 0 && len(p) == 0 && haveR {
		// Neither part sent (Apache mod_authnz_fcgi's authorizer requests): the request's
		// path is all there is, decoded as a front end would have.
		return split(nil, r, ruleFromRequestURI)
	}

	if bp, ok := proxyPath(in.scriptFilename, keep2F); ok && haveR && fileSystemSplit(s, p, bp) {
		// SetHandler "proxy:…|fcgi://host/": Apache splits SCRIPT_NAME from PATH_INFO where
		// the path stops existing under DocumentRoot, and SCRIPT_FILENAME is
		// proxy:fcgi://host/ + that file name. Nothing on disk says where the app is mounted
		// (<Location /> and <Location /app/> send the same params): the app is at the root.
		// With proxy-fcgi-pathinfo, PATH_INFO is that file name and SCRIPT_NAME the whole path.
		full := concat(s, p)
		if bytes.Equal(p, bp) {
			full = s
			if len(s) == 0 || !samePath(s, r) {
				full = r
			} else if r[len(r)-1] == '/' && s[len(s)-1] != '/' {
				full = concat(s, []byte("/"))
			}
		}
		return split(nil, full, ruleFileSystem)
	}

	if len(p) == 0 && len(s) > 0 {
		// Whole path in SCRIPT_NAME. Apache's proxy handler says in SCRIPT_FILENAME which part
		// of it reached the backend URL; the rest was a ProxyPass prefix.
		if bp, ok := proxyPath(in.scriptFilename, keep2F); ok {
			if i := len(s) - len(bp); i > 0 && bytes.HasSuffix(s, bp) && bp[0] == '/' {
				return split(s[:i], bp, ruleProxyPath)
			}
		}
		if !haveR || samePath(s, r) {
			return split(nil, s, ruleWholePath)
		}
		return pathResult{path: s, rule: ruleConflict, conflict: "SCRIPT_NAME without PATH_INFO differs from REQUEST_URI"}
	}

	full := concat(s, p)
	switch {
	case !haveR:
		return split(s, p, ruleNoRequestURI)
	case samePath(full, r):
		return split(s, p, ruleSplit)
	}
	if bytes.IndexByte(p, '%') >= 0 {
		dp := unescapePath(p, keep2F)
		if samePath(concat(s, dp), r) {
			return split(s, dp, ruleSplitDecoded)
		}
		// Apache computes SCRIPT_NAME as the decoded path less as many bytes as the encoded
		// PATH_INFO has, so with an escape in it SCRIPT_NAME is cut short ("/app/café" for
		// /app/caf%C3%A9/a/b): SCRIPT_NAME is what precedes the decoded PATH_INFO in the URL.
		if i := len(r) - len(dp); i >= 0 && len(dp) > 0 && dp[0] == '/' && bytes.HasSuffix(r, dp) {
			return split(r[:i], dp, ruleSplitDecoded)
		}
	}
	if len(s) > 0 {
		// mod_fcgid + rewrite: SCRIPT_NAME /app/app.fcgi, PATH_INFO /foo, URL /app/foo.
		if dir := parentDir(s); !hasPrefixAtBoundary(r, s) && samePath(concat(dir, p), r) {
			return split(dir, p, ruleScriptFile)
		}
	}
	if len(s) == 0 && len(p) > 0 && p[0] == '/' && len(r) > len(p) && bytes.HasSuffix(r, p) {
		// Caddy handle_path /app/*: PATH_INFO /foo for the URL /app/foo.
		return split(r[:len(r)-len(p)], p, ruleStripped)
	}
	return pathResult{script: trimSlash(s), path: p, rule: ruleConflict,
		conflict: "SCRIPT_NAME+PATH_INFO differs from REQUEST_URI"}
}

// split builds a result with SCRIPT_NAME's trailing "/" moved to PATH_INFO (PEP 3333: SCRIPT_NAME
// never ends in "/"; PATH_INFO, when not empty, starts with one).
func split(script, pathInfo []byte, rule string) pathResult {
	t := trimSlash(script)
	if len(t) < len(script) && (len(pathInfo) == 0 || pathInfo[0] != '/') {
		pathInfo = concat([]byte("/"), pathInfo)
	}
	return pathResult{script: t, path: pathInfo, rule: rule}
}

func trimSlash(b []byte) []byte { return bytes.TrimRight(b, "/") }

// requestPath is REQUEST_URI's path, percent-decoded (but for %2F when keep2F); ok is false
// without a usable one.
func requestPath(uri []byte, keep2F bool) ([]byte, bool) {
	if len(uri) == 0 || uri[0] != '/' {
		return nil, false
	}
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return unescapePath(uri, keep2F), true
}

// proxyPath is the path of Apache mod_proxy's SCRIPT_FILENAME ("proxy:fcgi://host:port/path" or
// "proxy:unix:/sock|fcgi://host/path"), percent-decoded.
func proxyPath(sf []byte, keep2F bool) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(sf, []byte("proxy:"))
	if !ok {
		return nil, false
	}
	if i := bytes.IndexByte(rest, '|'); i >= 0 {
		rest = rest[i+1:]
	}
	i := bytes.Index(rest, []byte("://"))
	if i < 0 {
		return nil, false
	}
	rest = rest[i+3:]
	j := bytes.IndexByte(rest, '/')
	if j < 0 {
		return nil, false
	}
	p := rest[j:]
	if k := bytes.IndexByte(p, '?'); k >= 0 {
		p = p[:k]
	}
	return unescapePath(p, keep2F), true
}

// fileSystemSplit reports whether SCRIPT_FILENAME's proxy path bp is a file name under
// DocumentRoot (Apache's SetHandler form: "proxy:fcgi://host//srv/www/app") rather than the path
// of a ProxyPass backend URL: it starts with "//" (host, then an absolute file name) and ends
// with SCRIPT_NAME, or it is PATH_INFO (SetEnv proxy-fcgi-pathinfo).
func fileSystemSplit(s, p, bp []byte) bool {
	if !bytes.HasPrefix(bp, []byte("//")) {
		return false
	}
	return bytes.Equal(p, bp) || (len(s) > 0 && bytes.HasSuffix(bp, s))
}

// samePath compares two decoded paths the way a front end normalises them: runs of "/" merged
// and "." and ".." segments resolved (nginx does both before it sets its variables).
func samePath(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	return cleanPath(a) == cleanPath(b)
}

func cleanPath(b []byte) string {
	c := path.Clean("/" + string(b))
	if len(b) > 1 && b[len(b)-1] == '/' && c != "/" {
		c += "/"
	}
	return c
}

// cutPrefixAtBoundary cuts prefix from b when what follows is empty or starts with "/".
func cutPrefixAtBoundary(b, prefix []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(b, prefix)
	if !ok || (len(rest) > 0 && rest[0] != '/') {
		return nil, false
	}
	return rest, true
}

func hasPrefixAtBoundary(b, prefix []byte) bool {
	_, ok := cutPrefixAtBoundary(b, prefix)
	return ok
}

// parentDir is b without its last segment ("/app/app.fcgi" → "/app"; "/app.fcgi" → "").
func parentDir(b []byte) []byte {
	if i := bytes.LastIndexByte(b, '/'); i >= 0 {
		return b[:i]
	}
	return nil
}

func concat(a, b []byte) []byte {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	return append(append(make([]byte, 0, len(a)+len(b)), a...), b...)
}

// hasEncodedSlash reports whether b holds "%2F" (either case).
func hasEncodedSlash(b []byte) bool {
	return bytes.Contains(b, []byte("%2F")) || bytes.Contains(b, []byte("%2f"))
}

// unescapePath is unescape, or with keep2F unescape that leaves "%2F" as it is (Apache's
// ap_unescape_url_keep2f, what AllowEncodedSlashes NoDecode does).
func unescapePath(b []byte, keep2F bool) []byte {
	if !keep2F {
		return unescape(b)
	}
	var out []byte
	for {
		i := bytes.Index(b, []byte("%2F"))
		if j := bytes.Index(b, []byte("%2f")); j >= 0 && (i < 0 || j < i) {
			i = j
		}
		if i < 0 {
			return append(out, unescape(b)...)
		}
		out = append(append(out, unescape(b[:i])...), b[i:i+3]...)
		b = b[i+3:]
	}
}

// unescape percent-decodes b (RFC 3986 section 2.1); a "%" not followed by two hex digits stays
// as it is, as web servers pass it. "+" is not a space in a path.
func unescape(b []byte) []byte {
	i := bytes.IndexByte(b, '%')
	if i < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	out = append(out, b[:i]...)
	for ; i < len(b); i++ {
		c := b[i]
		if c == '%' && i+2 < len(b) {
			if h, ok1 := unhex(b[i+1]); ok1 {
				if l, ok2 := unhex(b[i+2]); ok2 {
					out = append(out, h<<4|l)
					i += 2
					continue
				}
			}
		}
		out = append(out, c)
	}
	return out
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
