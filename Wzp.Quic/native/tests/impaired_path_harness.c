/*
 * A call over a bad path (run by Wzp.Quic.Tests): client and server in memory, each direction losing,
 * duplicating and reordering 30 % of its packets (seeded), with a simulated clock. Both sides send
 * voice-sized datagrams (client every 20 ms, server every 10 ms) and the client writes a small
 * control message every 500 ms, for 60 simulated seconds.
 * It must stay up, deliver every control message, and keep delivering datagrams to the end. This is
 * the harness that found ngtcp2 0.12's wedge: DATAGRAM packets are not PTO-eliciting, so once lost
 * datagram packets filled the congestion window nothing was ever sent again and the connection idled out.
 * Usage: harness CERT_PEM KEY_PEM
 */
#include "harness.h"

#define SECONDS 60
#define MESSAGE_EVERY_MS 500
#define MESSAGES (SECONDS * 1000 / MESSAGE_EVERY_MS)

typedef struct {
  uint8_t packet[2048];
  int len; /* 0: nothing held */
} direction;

/* Moves every packet `from` has to send into `to`, impaired: lost, duplicated, or held back until
   after the next packet of the same direction (reordered). */
static void impaired_pump(wzp_endpoint *from, wzp_endpoint *to, struct sockaddr_in *from_addr, direction *dir) {
  uint8_t buf[2048], sa[128];
  uint32_t salen;
  int n;
  while ((n = wzp_endpoint_pop_packet(from, buf, sizeof buf, sa, sizeof sa, &salen, now_ns)) > 0) {
    int roll = rand() % 100;
    if (roll < 30) continue;
    if (roll < 60 && dir->len == 0) {
      memcpy(dir->packet, buf, (size_t)n);
      dir->len = n;
      continue;
    }
    wzp_endpoint_recv(to, (uint8_t *)from_addr, sizeof *from_addr, buf, (uint32_t)n, now_ns);
    if (roll < 90) wzp_endpoint_recv(to, (uint8_t *)from_addr, sizeof *from_addr, buf, (uint32_t)n, now_ns);
    if (dir->len) {
      wzp_endpoint_recv(to, (uint8_t *)from_addr, sizeof *from_addr, dir->packet, (uint32_t)dir->len, now_ns);
      dir->len = 0;
    }
  }
}

static int run(const char *cert, const char *key, unsigned seed) {
  srand(seed);
  struct sockaddr_in sa_srv = mk(4433), sa_cli = mk(5555);
  wzp_config sc = {0}, cc = {0};
  char err[256];
  sc.is_server = 1; sc.alpn = "wzp/1"; sc.cert_file = cert; sc.key_file = key;
  cc.alpn = "wzp/1"; cc.keep_alive_ns = 1000000000ULL;
  wzp_endpoint *srv, *cli;
  if (wzp_endpoint_new(&sc, (uint8_t *)&sa_srv, sizeof sa_srv, &srv, err, sizeof err)) { puts(err); return 0; }
  if (wzp_endpoint_new(&cc, (uint8_t *)&sa_cli, sizeof sa_cli, &cli, err, sizeof err)) { puts(err); return 0; }
  uint64_t cid = 0, sid = 0, sbytes = 0, cbytes = 0, sd = 0, cd = 0;
  int sconn = 0, cconn = 0, sclosed = 0, cclosed = 0;
  if (wzp_endpoint_connect(cli, (uint8_t *)&sa_srv, sizeof sa_srv, now_ns, &cid)) return 0;

  /* Handshake and the first control byte over a clean path. */
  for (int ms = 0; ms < 300 && sbytes == 0; ms++) {
    now_ns += 1000000;
    wzp_endpoint_handle_timers(cli, now_ns);
    wzp_endpoint_handle_timers(srv, now_ns);
    pump(cli, srv, &sa_cli, 0);
    uint64_t s = drain(srv, "server", &sbytes, &sconn, &sclosed, &sd);
    if (s) sid = s;
    pump(srv, cli, &sa_srv, 0);
    drain(cli, "client", &cbytes, &cconn, &cclosed, &cd);
    if (cconn && cbytes == 0 && sbytes == 0) wzp_conn_stream_write(cli, cid, (const uint8_t *)"h", 1, 0, now_ns);
  }
  if (sbytes != 1 || !sid) { printf("seed %u: no connection\n", seed); return 0; }

  direction up = {0}, down = {0};
  static const uint8_t message[9] = "rekeyAck";
  uint8_t voice[200];
  memset(voice, 1, sizeof voice);
  int written = 0;
  uint64_t datagrams_in_last_10s = 0;
  for (int ms = 0; ms < SECONDS * 1000; ms++) {
    now_ns += 1000000;
    if (ms % 20 == 0) wzp_conn_send_datagram(cli, cid, voice, sizeof voice, now_ns);
    if (ms % 10 == 0) wzp_conn_send_datagram(srv, sid, voice, sizeof voice, now_ns);
    if (ms % MESSAGE_EVERY_MS == 0 && wzp_conn_stream_write(cli, cid, message, sizeof message, 0, now_ns) == sizeof message)
      written++;
    wzp_endpoint_handle_timers(cli, now_ns);
    wzp_endpoint_handle_timers(srv, now_ns);
    uint64_t before = sd;
    impaired_pump(cli, srv, &sa_cli, &up);
    drain(srv, "server", &sbytes, &sconn, &sclosed, &sd);
    impaired_pump(srv, cli, &sa_srv, &down);
    drain(cli, "client", &cbytes, &cconn, &cclosed, &cd);
    if (ms >= (SECONDS - 10) * 1000) datagrams_in_last_10s += sd - before;
  }
  /* A clean path for a moment: whatever is still in flight arrives. */
  for (int ms = 0; ms < 3000; ms++) {
    now_ns += 1000000;
    wzp_endpoint_handle_timers(cli, now_ns);
    wzp_endpoint_handle_timers(srv, now_ns);
    pump(cli, srv, &sa_cli, 0);
    drain(srv, "server", &sbytes, &sconn, &sclosed, &sd);
    pump(srv, cli, &sa_srv, 0);
    drain(cli, "client", &cbytes, &cconn, &cclosed, &cd);
  }
  uint64_t delivered = (sbytes - 1) / sizeof message;
  printf("seed %u: %d control messages written, %llu delivered; %llu datagrams to the server in the last 10 s; closed client %d server %d\n",
         seed, written, (unsigned long long)delivered, (unsigned long long)datagrams_in_last_10s, cclosed, sclosed);
  wzp_endpoint_free(srv);
  wzp_endpoint_free(cli);
  return written == MESSAGES && delivered == (uint64_t)written && datagrams_in_last_10s > 0 && !cclosed && !sclosed;
}

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  int ok = 1;
  for (unsigned seed = 1; seed <= 6; seed++) ok &= run(argv[1], argv[2], seed);
  puts(ok ? "HARNESS OK" : "HARNESS FAILED");
  return ok ? 0 : 1;
}
