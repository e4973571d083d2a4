#!/usr/bin/env bash
# The test command of wsgi-fcgi: formatting, vet, unit tests (with -race), the Python runner's
# tests, a short fuzz of every fuzz target, then the integration tests against real servers.
# .ci/run runs exactly this. Works from any directory; safe to run again.
#
# On a Debian machine as root it installs what the integration tests need with apt-get; as
# another user it says what is missing and stops.
#
# Environment: FUZZTIME (default 300000x, about 10 s here) per fuzz target. A count, not a
# duration: with a duration, Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" as the time runs out (golang/go#75804, fixed in Go 1.27).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the tests need. Later servers (apache2, caddy, ...) are added here.
APT_PACKAGES="nginx python3-flask python3-django curl yamllint apache2 libapache2-mod-fcgid apache2-suexec-pristine spawn-fcgi caddy systemd php8.2-fpm prometheus pypy3 logrotate"
# The interpreter the tests run apps and the runner's unittests with.
PYTHON=/usr/bin/python3
FUZZTIME="${FUZZTIME:-300000x}"
# nginx lives in /usr/sbin, which is not on a normal user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"

section() {
	printf '\n==== %s\n' "$*"
}

# ---- tools ----
section "tools"
command -v go >/dev/null || {
	echo "go not found on PATH: install Go (see go.mod for the version)" >&2
	exit 1
}
missing=()
if command -v dpkg-query >/dev/null; then
	for pkg in $APT_PACKAGES; do
		if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]]; then
			missing+=("$pkg")
		fi
	done
else
	echo "not a Debian system (no dpkg-query): cannot check for $APT_PACKAGES" >&2
fi
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "missing Debian packages: ${missing[*]}" >&2
		echo "install them (as root: apt-get install ${missing[*]}) and run again" >&2
		exit 1
	fi
	echo "installing ${missing[*]}"
	apt-get update
	# shellcheck disable=SC2086 # the list is split on purpose
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $APT_PACKAGES
fi
go version
"$PYTHON" --version
"$PYTHON" -c 'import flask; print("flask", flask.__version__)'
pypy3 --version | tr '\n' ' ' && echo
nginx -v
curl --version | sed -n 1p

# Integration tests must not skip here: a missing tool is a failure.
export REQUIRE_INTEGRATION=1

# ---- Go ----
section "gofmt"
unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
	echo "gofmt -l: these files need gofmt -w:" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo ok

section "go vet"
go vet ./...
go vet -tags integration ./tests/...

section "unit tests (go test -race; includes the Python runner's unittests with $PYTHON)"
RUNNER_PYTHON="$PYTHON" go test -race -count=1 ./...

section "the Python runner's unittests under every CPython 3.8 to 3.13 and PyPy on the machine"
# The runner supports CPython 3.8+ and PyPy 3.9+ (docs/operations.md, "Python versions");
# pyenv's interpreters (~/.pyenv/versions) are what this machine has of CPython, Debian's
# pypy3 is installed above. Debian's $PYTHON ran them already with the Go tests above. Each
# interpreter is one line: the version that ran, or why it was skipped. The integration tests
# below (TestPythons) serve an app under the same interpreters.
pythons=()
for v in 3.8 3.9 3.10 3.11 3.12 3.13; do
	py="$(compgen -G "$HOME/.pyenv/versions/$v.*/bin/python3" | sort -V | tail -n 1 || true)"
	if [[ -x "$py" ]]; then
		pythons+=("$py")
	else
		echo "-- CPython $v: skipped (not under ~/.pyenv/versions)"
	fi
done
if command -v pypy3 >/dev/null; then
	pythons+=("$(command -v pypy3)")
else
	echo "-- PyPy: skipped (no pypy3 on PATH; Debian package pypy3)"
fi
for py in "${pythons[@]}"; do
	echo "-- $py: $("$py" -c 'import platform; print(platform.python_implementation(), platform.python_version())')"
	(cd pyrunner && PYTHONDONTWRITEBYTECODE=1 "$py" -m unittest discover -q -s . -p '*_test.py')
done
echo "ran under: $("$PYTHON" --version) ($PYTHON, with the Go tests) and ${#pythons[@]} more"

section "fuzz (${FUZZTIME} per target)"
# Every func FuzzXxx in a _test.go file, package by package (tests/ holds none).
found=0
while IFS= read -r dir; do
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		found=1
		echo "-- ./$dir $target"
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "./$dir"
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sed 's|^\./||' | grep -v '^tests' | sort -u)
((found)) || echo "no fuzz targets"

section "integration tests"
go test -tags integration -count=1 -p 1 -v ./tests/... # -p 1: tests/chaos loads the machine; never beside the others

section "all tests passed"
