//go:build !tcpoll_poll

package main

// backendTag: this test binary runs on package poll's default backend.
const backendTag = ""
