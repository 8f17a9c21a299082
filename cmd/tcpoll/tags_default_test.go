//go:build !tcpoll_poll && !tcpoll_kqsim

package main

// backendTag: this test binary runs on package poll's default backend.
const backendTag = ""
