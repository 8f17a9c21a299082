module github.com/tcpoll/poll

go 1.26.8

require (
	github.com/kavu/go_reuseport v1.5.0 // indirect
	github.com/tidwall/evio v1.0.8 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
