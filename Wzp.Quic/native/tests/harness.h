/* In-memory plumbing shared by the native test harnesses: endpoints wired back to back with a
   simulated clock. Header-only (static functions): each harness is one translation unit. */
#ifndef WZP_HARNESS_H
#define WZP_HARNESS_H
#include "wzpquic.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint64_t now_ns = 1000000000ULL;
static uint32_t max_event;

static struct sockaddr_in mk(int port) {
  struct sockaddr_in a; memset(&a, 0, sizeof a);
  a.sin_family = AF_INET; a.sin_port = htons(port); a.sin_addr.s_addr = htonl(0x7f000001);
  return a;
}

static int pump(wzp_endpoint *from, wzp_endpoint *to, struct sockaddr_in *from_addr, int drop_every) {
  uint8_t buf[2048], sa[128]; uint32_t salen; int n, count = 0;
  while ((n = wzp_endpoint_pop_packet(from, buf, sizeof buf, sa, sizeof sa, &salen, now_ns)) > 0) {
    count++;
    if (drop_every && count % drop_every == 0) continue;
    wzp_endpoint_recv(to, (uint8_t *)from_addr, sizeof *from_addr, buf, (uint32_t)n, now_ns);
  }
  return count;
}

static uint64_t drain(wzp_endpoint *ep, const char *who, uint64_t *stream_bytes, int *connected, int *closed, uint64_t *dgrams) {
  wzp_event ev; uint8_t small[64], buf[65536]; uint64_t last = 0; int rv;
  /* Probe with a tiny buffer first: an event must never be lost or truncated for want of room. */
  while ((rv = wzp_endpoint_poll_event(ep, &ev, small, sizeof small)) != 0) {
    if (rv < 0) {
      if (ev.data_len <= sizeof small || wzp_endpoint_poll_event(ep, &ev, buf, sizeof buf) != 1) { puts("poll misbehaved"); exit(1); }
      if (ev.data_len > max_event) max_event = ev.data_len;
    } else {
      memcpy(buf, small, ev.data_len);
    }
    last = ev.conn_id;
    if (ev.type == 1) { (*connected)++; }
    if (ev.type == 2) { (*dgrams)++; }
    if (ev.type == 3) { *stream_bytes += ev.data_len; wzp_conn_stream_consumed(ep, ev.conn_id, ev.data_len); }
    if (ev.type == 5) { (*closed)++; printf("%s closed flags=%u code=%llu\n", who, ev.flags, (unsigned long long)ev.code); }
  }
  return last;
}

#endif
