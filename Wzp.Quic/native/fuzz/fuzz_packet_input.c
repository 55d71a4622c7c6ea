/*
 * libFuzzer target for the shim's packet input (issue 12, fuzzing): everything a remote peer can
 * make a listener do. Built by scripts/fuzz.sh with clang -fsanitize=fuzzer,address,undefined;
 * WZP_FUZZ_CERT and WZP_FUZZ_KEY name a PEM certificate and key.
 *
 * An input is a list of records: one control byte, a 16-bit big-endian length, then that many bytes.
 * The first byte of the input picks the mode:
 * - even: raw mode. Each record is a datagram from one of four sources (two IPv4 addresses, two
 *   IPv6 addresses of one /64), delivered to a fresh listener. Fast; reaches every header check,
 *   routing, the stateless replies and their budgets, Retry tokens, refusals and the silent limits.
 * - odd: live mode. A real client connects to the listener in memory and each record is an action
 *   in the conversation: deliver the client's next packet with the record's bytes XORed in, drop
 *   or duplicate it, XOR the record into the plaintext of the next packet the client seals (so that
 *   the listener decrypts arbitrary frames and ClientHellos), inject the record raw, have either
 *   side send datagrams, stream bytes or close. ngtcp2 and GnuTLS are not instrumented, so this is
 *   how inputs get past the handshake.
 * Control byte: bits 0-1 source (raw mode), bits 2-4 time step (0, 1 ms, 10 ms, 100 ms, 1 s, 3 s,
 * 6 s, 30 s), bits 5-7 the action (live mode). Every input ends with 60 simulated seconds of timers,
 * after the client vanished, so idle, handshake and silent deadlines and the closing periods all
 * run; then the listener must hold no connection at all (one that outlives the silence is a leak of
 * its own, and the target aborts). The listener persists across inputs, as loading its certificate would cost
 * more than most inputs; it is logically empty at every start, and the clock only moves forward, so
 * its reply budgets are full again.
 */
#include "wzpquic.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Set by this target, used by the shim's fuzz build (-DWZP_FUZZ): the next plaintext the client
   seals is XORed with these bytes. */
extern const uint8_t *wzp_fuzz_xor;
extern size_t wzp_fuzz_xorlen;

static const char *cert_file, *key_file;
static uint64_t now_ns = 1000000000ULL;
static wzp_endpoint *srv;
static struct sockaddr_storage sources[4];
static struct sockaddr_in sa_srv, sa_cli;

static const uint64_t steps[8] = {0, 1000000ULL, 10000000ULL, 100000000ULL, 1000000000ULL,
                                  3000000000ULL, 6000000000ULL, 30000000000ULL};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  cert_file = getenv("WZP_FUZZ_CERT");
  key_file = getenv("WZP_FUZZ_KEY");
  if (!cert_file || !key_file) {
    fprintf(stderr, "set WZP_FUZZ_CERT and WZP_FUZZ_KEY to a PEM certificate and key\n");
    exit(2);
  }
  struct sockaddr_in *a = (struct sockaddr_in *)&sources[0], *b = (struct sockaddr_in *)&sources[1];
  a->sin_family = b->sin_family = AF_INET;
  a->sin_port = htons(40000);
  b->sin_port = htons(40001);
  a->sin_addr.s_addr = htonl(0x7f000002);
  b->sin_addr.s_addr = htonl(0xc0000201);
  for (int i = 2; i < 4; i++) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sources[i];
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)(40000 + i));
    inet_pton(AF_INET6, i == 2 ? "2001:db8::1" : "2001:db8::ffff:2", &s6->sin6_addr);
  }
  sa_srv.sin_family = sa_cli.sin_family = AF_INET;
  sa_srv.sin_addr.s_addr = sa_cli.sin_addr.s_addr = htonl(0x7f000001);
  sa_srv.sin_port = htons(4433);
  sa_cli.sin_port = htons(5555);
  char err[256];
  wzp_config sc = {0};
  sc.is_server = 1; sc.alpn = "wzp/1"; sc.cert_file = cert_file; sc.key_file = key_file;
  /* Small limits, so that inputs reach them: Retry, refusals, eviction of silent connections. */
  sc.max_connections = 6;
  sc.max_connections_per_address = 4;
  sc.retry_threshold = 3;
  sc.max_silent_connections = 4;
  sc.max_silent_connections_per_address = 3;
  sc.silent_timeout_ns = 2000000000ULL;
  if (wzp_endpoint_new(&sc, (const uint8_t *)&sa_srv, sizeof sa_srv, &srv, err, sizeof err)) {
    fprintf(stderr, "listener: %s\n", err);
    exit(2);
  }
  return 0;
}

static socklen_t sa_len(const struct sockaddr_storage *s) {
  return s->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* Reads every event; the ids of the connections that are up are what the API actions use. */
static void drain(wzp_endpoint *ep, uint64_t *conn, int consume) {
  wzp_event ev;
  static uint8_t buf[70000];
  int rv;
  while ((rv = wzp_endpoint_poll_event(ep, &ev, buf, 16)) != 0) {
    if (rv < 0 && wzp_endpoint_poll_event(ep, &ev, buf, sizeof buf) != 1) abort(); /* never lose an event */
    if (ev.type == WZP_EV_CONNECTED && conn) *conn = ev.conn_id;
    if (ev.type == WZP_EV_STREAM_DATA && consume) wzp_conn_stream_consumed(ep, ev.conn_id, ev.data_len);
    if (ev.type == WZP_EV_CLOSED && conn && *conn == ev.conn_id) *conn = 0;
  }
}

/* Packets the listener sends are read and dropped in raw mode (nobody answers). */
static void discard(wzp_endpoint *ep) {
  uint8_t buf[2048], sa[128];
  uint32_t salen;
  while (wzp_endpoint_pop_packet(ep, buf, sizeof buf, sa, sizeof sa, &salen, now_ns) > 0) {
  }
}

static void deliver_all(wzp_endpoint *from, wzp_endpoint *to, const struct sockaddr_in *from_sa) {
  uint8_t buf[2048], sa[128];
  uint32_t salen;
  int n;
  while ((n = wzp_endpoint_pop_packet(from, buf, sizeof buf, sa, sizeof sa, &salen, now_ns)) > 0)
    wzp_endpoint_recv(to, (const uint8_t *)from_sa, sizeof *from_sa, buf, (uint32_t)n, now_ns);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int live = data[0] & 1;
  data++;
  size--;
  char err[256];
  wzp_endpoint *cli = NULL;
  uint64_t cli_conn = 0, srv_conn = 0, cid = 0;
  if (live) {
    wzp_config cc = {0};
    cc.alpn = "wzp/1";
    cc.keep_alive_ns = 500000000ULL;
    if (wzp_endpoint_new(&cc, (const uint8_t *)&sa_cli, sizeof sa_cli, &cli, err, sizeof err)) abort();
    if (wzp_endpoint_connect(cli, (const uint8_t *)&sa_srv, sizeof sa_srv, now_ns, &cid)) abort();
  }

  static uint8_t payload[65536], pkt[2048];
  while (size >= 3) {
    uint8_t ctl = data[0];
    size_t len = ((size_t)data[1] << 8) | data[2];
    data += 3;
    size -= 3;
    if (len > size) len = size;
    const uint8_t *rec = data;
    data += len;
    size -= len;
    now_ns += steps[(ctl >> 2) & 7];
    wzp_endpoint_handle_timers(srv, now_ns);
    if (!live) {
      const struct sockaddr_storage *from = &sources[ctl & 3];
      wzp_endpoint_recv(srv, (const uint8_t *)from, sa_len(from), rec, (uint32_t)len, now_ns);
      discard(srv);
      drain(srv, &srv_conn, 1);
      if (srv_conn && (ctl & 0x80)) {
        /* The listener answering a connection an input managed to open. */
        wzp_conn_send_datagram(srv, srv_conn, rec, (uint32_t)len, now_ns);
        wzp_conn_stream_write(srv, srv_conn, rec, (uint32_t)len, 0, now_ns);
        discard(srv);
      }
      continue;
    }
    wzp_endpoint_handle_timers(cli, now_ns);
    uint8_t sa[128];
    uint32_t salen;
    int n;
    switch (ctl >> 5) {
    case 1: /* the next packet the client seals carries the record XORed into its frames */
      wzp_fuzz_xor = rec;
      wzp_fuzz_xorlen = len;
      if (cli_conn) wzp_conn_stream_write(cli, cli_conn, rec, (uint32_t)(len > 64 ? 64 : len), 0, now_ns);
      deliver_all(cli, srv, &sa_cli);
      break;
    case 0: /* the client's next packet, corrupted by the record */
      n = wzp_endpoint_pop_packet(cli, pkt, sizeof pkt, sa, sizeof sa, &salen, now_ns);
      if (n > 0) {
        for (size_t i = 0; i < len && i < (size_t)n; i++) pkt[i] ^= rec[i];
        wzp_endpoint_recv(srv, (const uint8_t *)&sa_cli, sizeof sa_cli, pkt, (uint32_t)n, now_ns);
        if (ctl & 2) wzp_endpoint_recv(srv, (const uint8_t *)&sa_cli, sizeof sa_cli, pkt, (uint32_t)n, now_ns);
      }
      break;
    case 2: /* the client's next packet is lost */
      wzp_endpoint_pop_packet(cli, pkt, sizeof pkt, sa, sizeof sa, &salen, now_ns);
      break;
    case 3: /* a datagram injected from the client's address (an on-path attacker) */
      wzp_endpoint_recv(srv, (const uint8_t *)&sa_cli, sizeof sa_cli, rec, (uint32_t)len, now_ns);
      break;
    case 4: /* both sides talk */
      if (cli_conn) {
        memcpy(payload, rec, len);
        wzp_conn_send_datagram(cli, cli_conn, payload, (uint32_t)(len > 1200 ? 1200 : len), now_ns);
        wzp_conn_stream_write(cli, cli_conn, payload, (uint32_t)len, (ctl & 1), now_ns);
      }
      if (srv_conn) {
        uint32_t lens[4] = {(uint32_t)len / 4, (uint32_t)len / 4, (uint32_t)len / 4, (uint32_t)len / 4};
        uint32_t sent;
        wzp_conn_send_datagrams(srv, srv_conn, rec, lens, 4, &sent, now_ns);
        wzp_conn_stream_write(srv, srv_conn, rec, (uint32_t)len, 0, now_ns);
      }
      break;
    case 5: /* a clean exchange of everything queued */
      deliver_all(cli, srv, &sa_cli);
      break;
    case 6: /* someone closes */
      if (ctl & 1) {
        if (cli_conn) wzp_conn_close(cli, cli_conn, len, rec, (uint32_t)len, now_ns);
      } else if (srv_conn) {
        wzp_conn_close(srv, srv_conn, len, rec, (uint32_t)len, now_ns);
      }
      break;
    default: { /* statistics of whatever is there */
      wzp_conn_stats st;
      wzp_endpoint_stats es;
      wzp_conn_get_stats(srv, srv_conn, &st);
      wzp_endpoint_get_stats(srv, &es);
      wzp_conn_get_remote(srv, srv_conn, sa, sizeof sa, &salen);
      wzp_conn_max_datagram_payload(srv, srv_conn);
      break;
    }
    }
    /* The listener's replies always reach the client: the fuzzer attacks one direction. */
    deliver_all(srv, cli, &sa_srv);
    drain(srv, &srv_conn, 1);
    drain(cli, &cli_conn, 1);
  }

  wzp_fuzz_xorlen = 0; /* it points into this input */
  /* The client vanishes mid-conversation; 60 s of its silence must free everything, bar a closing
     period or an idle timeout that ngtcp2 stretched to 3 x PTO after the input's huge simulated
     RTTs: those get another 20 minutes. */
  if (cli) {
    deliver_all(cli, srv, &sa_cli);
    wzp_endpoint_free(cli);
  }
  wzp_endpoint_stats es;
  for (int i = 0; i < 80; i++) {
    now_ns += i < 60 ? 1000000000ULL : 60000000000ULL;
    wzp_endpoint_handle_timers(srv, now_ns);
    discard(srv);
    drain(srv, NULL, 0);
    wzp_endpoint_get_stats(srv, &es);
    if (i >= 60 && es.connections == 0) break;
  }
  if (es.connections != 0 || es.handshakes_in_progress != 0) {
    fprintf(stderr, "listener still holds %llu connections (%llu handshaking) after 21 min of silence\n",
            (unsigned long long)es.connections, (unsigned long long)es.handshakes_in_progress);
    abort();
  }
  return 0;
}
