//go:build aix || solaris || (tcpoll_poll && (darwin || dragonfly || netbsd || openbsd))

package poll

// pollRDHUP is 0 where poll(2) has no POLLRDHUP (or x/sys/unix does not
// name it): a peer's shutdown(SHUT_WR) shows as Readable, and the read
// returns end of file. macOS says it with POLLHUP instead (pollHUPIsEOF).
const pollRDHUP = 0
