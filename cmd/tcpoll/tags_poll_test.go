//go:build tcpoll_poll

package main

// backendTag: this test binary runs on package poll's poll(2) backend.
const backendTag = "tcpoll_poll"
