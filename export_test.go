package poll

// What the backend of this build reports, so that the contract tests,
// written once, know which of the contract's per-backend clauses apply.
const (
	// Backend names it: "epoll", "kqueue", "poll" or "none".
	Backend = backendName
	// EdgeTriggeredSupported is false where EdgeTriggered is refused.
	EdgeTriggeredSupported = edgeTriggered
	// ReportsReadClosed is false where a peer's shutdown(SHUT_WR) shows
	// only as Readable (poll(2) without POLLRDHUP).
	ReportsReadClosed = reportsReadClosed
	// HangUpWithoutInterest says whether a registration with no interest
	// still reports HangUp and Err.
	HangUpWithoutInterest = hangUpWithoutInterest
)
