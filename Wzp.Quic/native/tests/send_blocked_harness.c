/*
 * wzp_endpoint_send_ready against a socket whose send buffer is full (issue 12, defect 8). Loopback
 * UDP never reports EAGAIN, so this harness interposes sendmmsg: the shim, compiled into the same
 * executable, calls the definition below, which refuses packets while `blocked` is set and otherwise
 * delivers them to the client endpoint in memory. It used to spin, dropping one packet per EAGAIN;
 * now it must stop at once, keep every packet and send them all, in order, once writable again.
 * Usage: harness CERT_PEM KEY_PEM
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>

static int blocked, calls;
static wzp_endpoint *deliver_to;
static struct sockaddr_in deliver_from;

int sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags) {
  (void)fd;
  (void)flags;
  calls++;
  if (blocked) {
    errno = EAGAIN;
    return -1;
  }
  for (unsigned i = 0; i < n; i++) {
    struct iovec *v = msgs[i].msg_hdr.msg_iov;
    wzp_endpoint_recv(deliver_to, (uint8_t *)&deliver_from, sizeof deliver_from, v->iov_base,
                      (uint32_t)v->iov_len, now_ns);
    msgs[i].msg_len = (unsigned)v->iov_len;
  }
  return (int)n;
}

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      printf("FAILED: " __VA_ARGS__);                                                              \
      puts("");                                                                                    \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  struct sockaddr_in sa_srv = mk(4433), sa_cli = mk(5555);
  wzp_config sc = {0}, cc = {0};
  char err[256];
  sc.is_server = 1; sc.alpn = "wzp/1"; sc.cert_file = argv[1]; sc.key_file = argv[2];
  cc.alpn = "wzp/1";
  wzp_endpoint *srv, *cli;
  if (wzp_endpoint_new(&sc, (uint8_t *)&sa_srv, sizeof sa_srv, &srv, err, sizeof err)) { puts(err); return 1; }
  if (wzp_endpoint_new(&cc, (uint8_t *)&sa_cli, sizeof sa_cli, &cli, err, sizeof err)) { puts(err); return 1; }
  uint64_t cid = 0, sid = 0, sbytes = 0, cbytes = 0, sd = 0, cd = 0;
  int sconn = 0, cconn = 0, sclosed = 0, cclosed = 0;
  if (wzp_endpoint_connect(cli, (uint8_t *)&sa_srv, sizeof sa_srv, now_ns, &cid)) return 1;
  for (int round = 0; round < 200 && !(sconn && cconn); round++) {
    now_ns += 1000000;
    wzp_endpoint_handle_timers(cli, now_ns);
    wzp_endpoint_handle_timers(srv, now_ns);
    pump(cli, srv, &sa_cli, 0);
    uint64_t s = drain(srv, "server", &sbytes, &sconn, &sclosed, &sd);
    if (s) sid = s;
    pump(srv, cli, &sa_srv, 0);
    drain(cli, "client", &cbytes, &cconn, &cclosed, &cd);
  }
  CHECK(sconn && cconn && sid, "handshake");
  /* Let the client's last ACKs reach the server so that nothing else is queued. */
  for (int round = 0; round < 50; round++) {
    now_ns += 1000000;
    wzp_endpoint_handle_timers(cli, now_ns); wzp_endpoint_handle_timers(srv, now_ns);
    pump(cli, srv, &sa_cli, 0); pump(srv, cli, &sa_srv, 0);
    drain(srv, "server", &sbytes, &sconn, &sclosed, &sd); drain(cli, "client", &cbytes, &cconn, &cclosed, &cd);
  }

  deliver_to = cli;
  deliver_from = sa_srv;
  uint8_t d[100];
  int queued = 0;
  for (int i = 0; i < 20; i++) {
    memset(d, i, sizeof d);
    if (wzp_conn_send_datagram(srv, sid, d, sizeof d, now_ns) == 1) queued++;
  }
  CHECK(queued == 20, "20 datagrams queued, got %d", queued);

  wzp_endpoint_stats before, after;
  wzp_endpoint_get_stats(srv, &before);
  blocked = 1;
  calls = 0;
  int rv = wzp_endpoint_send_ready(srv, 99, now_ns);
  wzp_endpoint_get_stats(srv, &after);
  CHECK(rv == WZP_ERR_WOULD_BLOCK, "send_ready on a full socket returned %d", rv);
  CHECK(calls == 1, "send_ready retried a full socket %d times instead of returning", calls);
  CHECK(after.packets_dropped == before.packets_dropped, "%llu packets dropped at a full socket",
        (unsigned long long)(after.packets_dropped - before.packets_dropped));

  /* Still blocked: the queue fills up, then datagrams are dropped (and counted), never an endless
     WZP_ERR_TX_FULL that would have the caller flush and retry forever. */
  int tx_full = 0, dropped_now = 0;
  for (int i = 0; i < 200; i++) {
    int r = wzp_conn_send_datagram(srv, sid, d, sizeof d, now_ns);
    if (r == WZP_ERR_TX_FULL) tx_full++;
    if (r == 0) dropped_now++;
  }
  wzp_conn_stats cs;
  wzp_conn_get_stats(srv, sid, &cs);
  CHECK(tx_full == 0, "%d sends asked to flush a blocked socket", tx_full);
  CHECK(dropped_now > 0 && cs.datagrams_dropped >= (uint64_t)dropped_now, "drops at a blocked socket are counted");
  uint64_t accepted = cs.datagrams_sent;

  blocked = 0;
  calls = 0;
  rv = wzp_endpoint_send_ready(srv, 99, now_ns);
  CHECK(rv > 0, "send_ready once writable returned %d", rv);
  uint64_t before_dgrams = cd;
  drain(cli, "client", &cbytes, &cconn, &cclosed, &cd);
  wzp_endpoint_get_stats(srv, &after);
  printf("blocked send: %d packets sent once writable in %d calls, client got %llu of %llu datagrams, %d dropped while blocked\n",
         rv, calls, (unsigned long long)(cd - before_dgrams), (unsigned long long)accepted, dropped_now);
  CHECK(cd - before_dgrams == accepted, "client got %llu datagrams, server accepted %llu",
        (unsigned long long)(cd - before_dgrams), (unsigned long long)accepted);
  CHECK(after.packets_dropped == before.packets_dropped, "packets dropped");
  CHECK(after.send_blocked == 1, "send_blocked counter %llu", (unsigned long long)after.send_blocked);

  /* Writable again: a datagram goes out directly. */
  CHECK(wzp_conn_send_datagram(srv, sid, d, sizeof d, now_ns) == 1, "send after unblock");
  CHECK(wzp_endpoint_send_ready(srv, 99, now_ns) >= 1, "send_ready after unblock");

  wzp_endpoint_free(cli);
  wzp_endpoint_free(srv);
  puts("HARNESS OK");
  return 0;
}
