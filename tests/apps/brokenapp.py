"""An app whose import fails: tests/cli_test.go checks the gateway reports it and exits 2."""

raise RuntimeError("brokenapp-import-failure")
