/* The C reference for the zero-copy benchmark: a level-triggered epoll echo loop with one
 * 64 KiB read buffer, one read per readable event, and an immediate write back; what the
 * kernel does not take is queued and sent on writability, with reading paused meanwhile.
 * With --splice it moves bytes socket -> pipe -> socket instead (one 1 MiB pipe per
 * connection), the feasibility test that issue 8 quotes.
 *
 *   cc -O2 -o target/release/c-epoll-echo bench/peers/c/epoll_echo.c
 *   c-epoll-echo 127.0.0.1:0 [--splice]      prints "listening tcp ADDR" like echo-server
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)
#define PIPE_SIZE (1 << 20)

struct conn {
    int fd;
    char *queue; /* copy mode: bytes the kernel did not take */
    size_t len, off;
    int pipe[2]; /* splice mode */
    size_t held;
};

static int ep, use_splice;
static char buf[READ_BUF];

static void watch(struct conn *c, int want_write) {
    struct epoll_event ev = {.events = want_write ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (use_splice) {
        close(c->pipe[0]);
        close(c->pipe[1]);
    }
    free(c->queue);
    free(c);
}

/* Sends what is held; returns 1 when everything went, 0 when some is left, -1 on error. */
static int flush(struct conn *c) {
    if (use_splice) {
        while (c->held) {
            ssize_t n = splice(c->pipe[0], NULL, c->fd, NULL, c->held, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0) return errno == EAGAIN ? 0 : -1;
            c->held -= n;
        }
        return 1;
    }
    while (c->off < c->len) {
        ssize_t n = write(c->fd, c->queue + c->off, c->len - c->off);
        if (n < 0) return errno == EAGAIN ? 0 : -1;
        c->off += n;
    }
    c->off = c->len = 0;
    return 1;
}

static void on_readable(struct conn *c) {
    ssize_t n;
    if (use_splice) {
        n = splice(c->fd, NULL, c->pipe[1], NULL, PIPE_SIZE, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) { drop(c); return; }
        c->held += n;
    } else {
        n = read(c->fd, buf, sizeof buf);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) { drop(c); return; }
        ssize_t m = write(c->fd, buf, n);
        if (m < 0 && errno != EAGAIN) { drop(c); return; }
        if (m < 0) m = 0;
        if (m == n) return;
        c->queue = realloc(c->queue, n - m);
        memcpy(c->queue, buf + m, n - m);
        c->len = n - m;
        c->off = 0;
    }
    int r = flush(c);
    if (r < 0) drop(c);
    else if (r == 0) watch(c, 1);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s IP:PORT [--splice]\n", argv[0]); return 2; }
    use_splice = argc > 2 && strcmp(argv[2], "--splice") == 0;
    signal(SIGPIPE, SIG_IGN);
    char host[64];
    snprintf(host, sizeof host, "%s", argv[1]);
    char *colon = strrchr(host, ':');
    if (!colon) return 2;
    *colon = 0;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
    inet_pton(AF_INET, host, &addr.sin_addr);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 4096)) { perror("bind"); return 1; }
    socklen_t alen = sizeof addr;
    getsockname(ls, (struct sockaddr *)&addr, &alen);
    printf("listening tcp %s:%d\n", host, ntohs(addr.sin_port));
    fflush(stdout);
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event events[1024];
    for (;;) {
        int k = epoll_wait(ep, events, 1024, -1);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return 1;
        for (int i = 0; i < k; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    if (use_splice) {
                        pipe2(c->pipe, O_NONBLOCK);
                        fcntl(c->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
                    }
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (events[i].events & EPOLLIN) on_readable(c);
            else if (events[i].events & EPOLLOUT) {
                int r = flush(c);
                if (r < 0) drop(c);
                else if (r == 1) watch(c, 0);
            } else drop(c);
        }
    }
}
