module github.com/wsgi-fcgi/wsgi-fcgi

go 1.26.8

require (
	github.com/hashicorp/go-hclog v1.6.3
	github.com/kelseyhightower/envconfig v1.4.0
	github.com/yookoala/gofast v0.8.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/fatih/color v1.13.0 // indirect
	github.com/mattn/go-colorable v0.1.12 // indirect
	github.com/mattn/go-isatty v0.0.14 // indirect
	golang.org/x/tools v0.0.0-20200908211811-12e1bf57a112 // indirect
)
