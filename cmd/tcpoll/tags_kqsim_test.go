//go:build tcpoll_kqsim && !tcpoll_poll

package main

// backendTag: this test binary runs on package poll's kqueue backend over
// the kqueue model (poll_kqsim_linux.go), and so do the servers it builds.
const backendTag = "tcpoll_kqsim"
