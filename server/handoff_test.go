//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import "os"

// TCPOLL_HANDOFF=1 runs the whole suite with one accepting loop handing
// connections to the others, as on macOS, NetBSD, OpenBSD and DragonFly,
// so that path runs on Linux too; .ci/run runs it.
func init() {
	if os.Getenv("TCPOLL_HANDOFF") == "1" {
		spreadByHandoff = true
	}
}
