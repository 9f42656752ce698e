/* A preload shim for bench_upstream.py's `--dnsdist-nodelay` reference: sets TCP_NODELAY on every
 * TCP socket the process connects. dnsdist 1.7's outgoing DoH writes a query's HEADERS and DATA as
 * two small TLS records without it, so Nagle's algorithm holds the second until the server's
 * delayed ACK (tens of ms): its answers come late and in bulk. With the shim it answers each query
 * as it comes, like the resolvers it is compared with. Built by the script with `cc`; benchmark
 * use only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    int type = 0;
    socklen_t type_len = sizeof type;
    if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) &&
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 && type == SOCK_STREAM) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return real(fd, addr, len);
}
