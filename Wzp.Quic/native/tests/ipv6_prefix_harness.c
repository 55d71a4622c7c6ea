/*
 * Per-address limits over IPv6 (issue 12, defect 4): an attacker holding one /64 has 2^64 addresses,
 * so limits keyed by the full address bound nothing. The machine running the tests has only ::1,
 * so this harness wires endpoints together in memory with a simulated clock: 80 clients from one
 * /64 complete their handshakes and then stay silent, against a server that holds 64 connections
 * and 16 per address; then a newcomer from another /64 connects. Before the fix the /64 took all
 * 64 slots and the newcomer was refused.
 * Usage: harness CERT_PEM KEY_PEM
 */
#include "wzpquic.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define ATTACKERS 80
#define PEERS (ATTACKERS + 2) /* attackers, the newcomer, the server */
#define MAX_CONNS 64
#define PER_ADDR 16

static uint64_t now_ns = 1000000000ULL;

typedef struct {
  wzp_endpoint *ep;
  struct sockaddr_in6 sa;
  uint64_t conn;
  int connected, closed;
  uint64_t close_code;
} peer;

static peer peers[PEERS];

static struct sockaddr_in6 mk6(const char *addr, int port) {
  struct sockaddr_in6 a;
  memset(&a, 0, sizeof a);
  a.sin6_family = AF_INET6;
  a.sin6_port = htons((uint16_t)port);
  inet_pton(AF_INET6, addr, &a.sin6_addr);
  return a;
}

static peer *route(const uint8_t *sa, uint32_t salen) {
  if (salen < sizeof(struct sockaddr_in6)) return NULL;
  const struct sockaddr_in6 *to = (const struct sockaddr_in6 *)sa;
  for (int i = 0; i < PEERS; i++)
    if (peers[i].ep && peers[i].sa.sin6_port == to->sin6_port &&
        memcmp(&peers[i].sa.sin6_addr, &to->sin6_addr, 16) == 0)
      return &peers[i];
  return NULL;
}

/* One millisecond of the simulated network: timers, every queued packet delivered, events read. */
static void step(void) {
  now_ns += 1000000;
  for (int i = 0; i < PEERS; i++)
    if (peers[i].ep) wzp_endpoint_handle_timers(peers[i].ep, now_ns);
  for (int i = 0; i < PEERS; i++) {
    if (!peers[i].ep) continue;
    uint8_t buf[2048], sa[128];
    uint32_t salen;
    int n;
    while ((n = wzp_endpoint_pop_packet(peers[i].ep, buf, sizeof buf, sa, sizeof sa, &salen, now_ns)) > 0) {
      peer *to = route(sa, salen);
      if (to) wzp_endpoint_recv(to->ep, (uint8_t *)&peers[i].sa, sizeof peers[i].sa, buf, (uint32_t)n, now_ns);
    }
  }
  for (int i = 0; i < PEERS; i++) {
    if (!peers[i].ep) continue;
    wzp_event ev;
    uint8_t data[65536];
    while (wzp_endpoint_poll_event(peers[i].ep, &ev, data, sizeof data) == 1) {
      if (i == PEERS - 1) continue; /* the server's own events are not needed */
      if (ev.type == WZP_EV_CONNECTED) peers[i].connected = 1;
      if (ev.type == WZP_EV_CLOSED) {
        peers[i].closed = 1;
        peers[i].close_code = ev.code;
      }
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  char err[256];
  peer *srv = &peers[PEERS - 1];
  srv->sa = mk6("2001:db8:ffff::1", 4433);
  wzp_config sc = {0};
  sc.is_server = 1; sc.alpn = "wzp/1"; sc.cert_file = argv[1]; sc.key_file = argv[2];
  sc.max_connections = MAX_CONNS;
  sc.max_connections_per_address = PER_ADDR;
  if (wzp_endpoint_new(&sc, (uint8_t *)&srv->sa, sizeof srv->sa, &srv->ep, err, sizeof err)) { puts(err); return 1; }

  wzp_config cc = {0};
  cc.alpn = "wzp/1";
  for (int i = 0; i < ATTACKERS; i++) {
    char a[64];
    /* Addresses all over one /64, as privacy addresses would be. */
    snprintf(a, sizeof a, "2001:db8:aaaa:1:%x:%x::%x", (unsigned)(i * 7919) & 0xffff, (unsigned)i, (unsigned)i + 1);
    peers[i].sa = mk6(a, 40000 + i);
    if (wzp_endpoint_new(&cc, (uint8_t *)&peers[i].sa, sizeof peers[i].sa, &peers[i].ep, err, sizeof err)) { puts(err); return 1; }
    if (wzp_endpoint_connect(peers[i].ep, (uint8_t *)&srv->sa, sizeof srv->sa, now_ns, &peers[i].conn)) return 1;
  }
  /* Long enough for every handshake (or refusal), well short of the 5 s silent deadline. */
  for (int t = 0; t < 500; t++) step();
  int connected = 0, refused = 0;
  for (int i = 0; i < ATTACKERS; i++) {
    if (peers[i].connected && !peers[i].closed) connected++;
    if (peers[i].closed && peers[i].close_code == 0x2) refused++;
  }

  peer *newcomer = &peers[PEERS - 2];
  newcomer->sa = mk6("2001:db8:bbbb:1::1", 50000);
  if (wzp_endpoint_new(&cc, (uint8_t *)&newcomer->sa, sizeof newcomer->sa, &newcomer->ep, err, sizeof err)) { puts(err); return 1; }
  if (wzp_endpoint_connect(newcomer->ep, (uint8_t *)&srv->sa, sizeof srv->sa, now_ns, &newcomer->conn)) return 1;
  int waited = 0;
  for (; waited < 2000 && !newcomer->connected && !newcomer->closed; waited++) step();

  wzp_endpoint_stats st;
  wzp_endpoint_get_stats(srv->ep, &st);
  printf("one /64: %d of %d connected, %d refused; newcomer %s after %d ms (closed=%d code=%llu); server holds %llu\n",
         connected, ATTACKERS, refused, newcomer->connected ? "connected" : "NOT connected", waited,
         newcomer->closed, (unsigned long long)newcomer->close_code, (unsigned long long)st.connections);
  int ok = connected <= PER_ADDR && refused >= ATTACKERS - PER_ADDR && newcomer->connected && !newcomer->closed;
  for (int i = 0; i < PEERS; i++) wzp_endpoint_free(peers[i].ep);
  if (!ok) {
    puts("FAILED: one /64 must count as one address and must not keep a newcomer out");
    return 1;
  }
  puts("HARNESS OK");
  return 0;
}
