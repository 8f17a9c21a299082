/*
 * epoll_server: the acknowledgement protocol of PROTOCOL.md, served the way
 * a careful C programmer would: one thread, level-triggered epoll,
 * non-blocking sockets, and per connection only the framing state (the
 * length of the unfinished message and whether it can still be "close")
 * plus an output buffer that exists only while a write was partial.
 *
 * It is the floor the Go servers are measured against in bench/run.
 *
 *   gcc -O2 -Wall -Wextra -o epoll_server epoll_server.c
 *   ./epoll_server [-addr 127.0.0.1:3137] [-max-message 256]
 *
 * It prints its listening address on stdout, then serves until killed.
 * IPv4 only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char answer[] = "I recieved your message\n";
#define ANSWER_LEN (sizeof answer - 1)
static const char closing[] = "closing";
#define CLOSING_LEN (sizeof closing - 1)
static const char close_cr[] = "close\r"; /* longest pending run that can be "close" */

#define READ_SIZE (16 << 10)
/* Past this many unsent bytes the server stops reading from a client. */
#define MAX_PENDING_OUTPUT (64 << 10)

struct conn {
	uint32_t n;        /* bytes of the unfinished message */
	uint8_t open;      /* the slot holds a connection */
	uint8_t not_close; /* the pending bytes are not a prefix of "close\r" */
	uint8_t closing;   /* close once the output is flushed */
	uint8_t reading;   /* EPOLLIN is in the interest set */
	char *out;         /* unsent output, only after a partial write */
	uint32_t out_len, out_off, out_cap;
};

static struct conn *conns; /* indexed by fd */
static int max_fds;
static uint32_t max_message = 256;
static int ep;
static int spare_fd = -1; /* released to accept and drop a client on EMFILE */

/* Every input byte yields at most one answer (a lone LF). */
static char outbuf[READ_SIZE * ANSWER_LEN + CLOSING_LEN];
static char inbuf[READ_SIZE];

static size_t emit(size_t o, const char *s, size_t n)
{
	memcpy(outbuf + o, s, n);
	return o + n;
}

/*
 * feed runs the framing over in[0:len), appending answers at outbuf+*o. It
 * returns 1 once the message "close" was answered; the rest is ignored.
 */
static int feed(struct conn *c, const char *in, size_t len, size_t *o)
{
	while (len > 0) {
		const char *lf = memchr(in, '\n', len);
		size_t seg = lf ? (size_t)(lf - in) : len;
		/* Byte max_message+1 of a message is not its LF: cut. */
		while (c->n + seg > max_message) {
			size_t k = max_message - c->n;
			in += k;
			len -= k;
			seg -= k;
			*o = emit(*o, answer, ANSWER_LEN);
			c->n = 0;
			c->not_close = 0;
		}
		if (!c->not_close && seg > 0 &&
		    (c->n + seg > sizeof close_cr - 1 || memcmp(in, close_cr + c->n, seg) != 0))
			c->not_close = 1;
		c->n += seg;
		in += seg;
		len -= seg;
		if (!lf)
			break;
		in++; /* the LF */
		len--;
		if (!c->not_close && (c->n == 5 || c->n == 6)) {
			*o = emit(*o, closing, CLOSING_LEN);
			return 1;
		}
		*o = emit(*o, answer, ANSWER_LEN);
		c->n = 0;
		c->not_close = 0;
	}
	return 0;
}

/* end answers the message unfinished at EOF, as if an LF had followed. */
static void end(struct conn *c, size_t *o)
{
	if (c->n == 0)
		return;
	if (!c->not_close && (c->n == 5 || c->n == 6))
		*o = emit(*o, closing, CLOSING_LEN);
	else
		*o = emit(*o, answer, ANSWER_LEN);
	c->n = 0;
}

static void drop(int fd)
{
	struct conn *c = &conns[fd];
	free(c->out);
	memset(c, 0, sizeof *c);
	close(fd); /* also removes fd from the epoll set */
}

static void set_interest(int fd, struct conn *c)
{
	uint32_t ev = 0;
	int read = !c->closing && c->out_len - c->out_off < MAX_PENDING_OUTPUT;
	if (read)
		ev |= EPOLLIN | EPOLLRDHUP;
	if (c->out_len > c->out_off)
		ev |= EPOLLOUT;
	struct epoll_event e = {.events = ev, .data.fd = fd};
	epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
	c->reading = read;
}

/* flush writes the pending output; it returns -1 on a socket error. */
static int flush(int fd, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		c->out_off += (uint32_t)w;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = c->out_cap = 0;
	return 0;
}

/*
 * send_out writes outbuf[0:n), keeping what the socket does not take. It
 * returns -1 on a socket error.
 */
static int send_out(int fd, struct conn *c, size_t n)
{
	size_t off = 0;
	if (c->out == NULL) {
		while (off < n) {
			ssize_t w = send(fd, outbuf + off, n - off, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN)
					break;
				return -1;
			}
			off += (size_t)w;
		}
		if (off == n)
			return 0;
	}
	size_t rest = n - off;
	if (c->out_len + rest > c->out_cap) {
		/* Compact, then grow. */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
		if (c->out_len + rest > c->out_cap) {
			uint32_t cap = c->out_cap ? c->out_cap : 4096;
			while (cap < c->out_len + rest)
				cap *= 2;
			char *p = realloc(c->out, cap);
			if (p == NULL)
				return -1;
			c->out = p;
			c->out_cap = cap;
		}
	}
	memcpy(c->out + c->out_len, outbuf + off, rest);
	c->out_len += (uint32_t)rest;
	return 0;
}

static void on_readable(int fd, struct conn *c)
{
	ssize_t n = read(fd, inbuf, sizeof inbuf);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		drop(fd); /* reset or error */
		return;
	}
	size_t o = 0;
	if (n == 0) {
		end(c, &o);
		c->closing = 1;
	} else if (feed(c, inbuf, (size_t)n, &o)) {
		c->closing = 1;
	}
	int had_pending = c->out_len > c->out_off;
	if (o > 0 && send_out(fd, c, o) < 0) {
		drop(fd);
		return;
	}
	int pending = c->out_len > c->out_off;
	if (c->closing && !pending) {
		drop(fd);
		return;
	}
	if (pending != had_pending || c->closing || (c->reading && c->out_len - c->out_off >= MAX_PENDING_OUTPUT))
		set_interest(fd, c);
}

static void on_writable(int fd, struct conn *c)
{
	if (flush(fd, c) < 0) {
		drop(fd);
		return;
	}
	if (c->closing && c->out == NULL) {
		drop(fd);
		return;
	}
	if (c->out == NULL || !c->reading)
		set_interest(fd, c);
}

static void on_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
				/* Accept and drop one client, so the listener does not
				 * stay readable and spin the loop. */
				close(spare_fd);
				fd = accept(lfd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				continue;
			}
			return; /* EAGAIN, or an error the next wake-up retries */
		}
		if (fd >= max_fds) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = &conns[fd];
		memset(c, 0, sizeof *c);
		c->open = 1;
		c->reading = 1;
		struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
			drop(fd);
			continue;
		}
	}
}

static int listen_on(const char *addr)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || (size_t)(colon - addr) >= sizeof host) {
		fprintf(stderr, "epoll_server: bad address %s (want IPv4:port)\n", addr);
		exit(2);
	}
	memcpy(host, addr, colon - addr);
	host[colon - addr] = 0;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
	if (host[0] == 0)
		sa.sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "epoll_server: bad host %s\n", host);
		exit(2);
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
		perror("epoll_server: listen");
		exit(1);
	}
	socklen_t len = sizeof sa;
	getsockname(fd, (struct sockaddr *)&sa, &len);
	char buf[INET_ADDRSTRLEN];
	printf("%s:%u\n", inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof buf), ntohs(sa.sin_port));
	fflush(stdout);
	return fd;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1:3137";
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "-addr") || !strcmp(argv[i], "--addr")) && i + 1 < argc)
			addr = argv[++i];
		else if ((!strcmp(argv[i], "-max-message") || !strcmp(argv[i], "--max-message")) && i + 1 < argc)
			max_message = (uint32_t)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [-addr HOST:PORT] [-max-message N]\n", argv[0]);
			return 2;
		}
	}
	if (max_message < 16 || max_message > READ_SIZE) {
		fprintf(stderr, "epoll_server: -max-message must be 16..%d\n", READ_SIZE);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		max_fds = (int)(rl.rlim_cur > 1 << 20 ? 1 << 20 : rl.rlim_cur);
	} else {
		max_fds = 1024;
	}
	conns = calloc((size_t)max_fds, sizeof *conns);
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	int lfd = listen_on(addr);
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e) < 0) {
		perror("epoll_server: epoll");
		return 1;
	}

	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_server: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			uint32_t ev = evs[i].events;
			if (fd == lfd) {
				on_accept(lfd);
				continue;
			}
			struct conn *c = &conns[fd];
			if (!c->open)
				continue; /* dropped earlier in this batch */
			if (ev & EPOLLOUT) {
				on_writable(fd, c);
				if (!c->open)
					continue;
			}
			/* EPOLLRDHUP and EPOLLHUP come with the EOF still to read;
			 * EPOLLERR shows up as a read error. */
			if (c->reading && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
				on_readable(fd, c);
			else if (!c->reading && (ev & (EPOLLHUP | EPOLLERR)))
				drop(fd);
		}
	}
}
