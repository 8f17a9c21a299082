module github.com/tcpoll/poll

go 1.26.0

require (
	github.com/tidwall/evio v1.0.8
	golang.org/x/sys v0.50.0
)

require github.com/kavu/go_reuseport v1.5.0 // indirect
