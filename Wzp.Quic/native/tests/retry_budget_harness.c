/*
 * Retry under a spoofed flood (issue 12, defect 3), on a simulated clock so that the flood is as
 * steady as a real one (a test process on a shared machine gets descheduled, and every pause
 * refills a budget). Initials from 32 spoofed addresses hold more half-open handshakes than the
 * Retry threshold, so a newcomer must validate its address; meanwhile 40 short-header junk packets
 * (each asks for a stateless reset) and 4 Initials with fresh CIDs (each asks for a Retry) arrive
 * every millisecond. When resets and Retry shared one budget, the junk took every token and the
 * newcomer never got its Retry. Five newcomers in turn must each connect within 2 s.
 * Usage: harness CERT_PEM KEY_PEM
 */
#include "harness.h"

#define SPOOFED 32
#define HALF_OPEN 48
#define THRESHOLD 16

static uint8_t initials[HALF_OPEN][1500];
static uint32_t initial_len[HALF_OPEN];

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  srand(7);
  char err[256];
  struct sockaddr_in sa_srv = mk(4433);
  wzp_config sc = {0}, cc = {0};
  sc.is_server = 1; sc.alpn = "wzp/1"; sc.cert_file = argv[1]; sc.key_file = argv[2];
  sc.retry_threshold = THRESHOLD;
  cc.alpn = "wzp/1";
  wzp_endpoint *srv;
  if (wzp_endpoint_new(&sc, (uint8_t *)&sa_srv, sizeof sa_srv, &srv, err, sizeof err)) { puts(err); return 1; }

  /* Genuine client Initials, each with its own CID, from clients that are then forgotten. */
  for (int i = 0; i < HALF_OPEN; i++) {
    struct sockaddr_in sa = mk(30000 + i);
    wzp_endpoint *c;
    uint64_t id;
    uint8_t to[128];
    uint32_t tolen;
    if (wzp_endpoint_new(&cc, (uint8_t *)&sa, sizeof sa, &c, err, sizeof err)) { puts(err); return 1; }
    if (wzp_endpoint_connect(c, (uint8_t *)&sa_srv, sizeof sa_srv, now_ns, &id)) return 1;
    int n = wzp_endpoint_pop_packet(c, initials[i], sizeof initials[i], to, sizeof to, &tolen, now_ns);
    if (n < 1200) { puts("no client Initial"); return 1; }
    initial_len[i] = (uint32_t)n;
    wzp_endpoint_free(c);
  }
  for (int i = 0; i < HALF_OPEN; i++) {
    struct sockaddr_in from = mk(20000 + i % SPOOFED);
    from.sin_addr.s_addr = htonl(0x7f000200 + (uint32_t)(i % SPOOFED) + 1);
    wzp_endpoint_recv(srv, (uint8_t *)&from, sizeof from, initials[i], initial_len[i], now_ns);
  }
  wzp_endpoint_stats st;
  wzp_endpoint_get_stats(srv, &st);
  if (st.handshakes_in_progress < THRESHOLD) { printf("only %llu half-open handshakes\n", (unsigned long long)st.handshakes_in_progress); return 1; }

  uint8_t flood_initial[1500];
  memcpy(flood_initial, initials[0], initial_len[0]);
  int dcidlen = flood_initial[5];
  int worst = 0;
  for (int k = 0; k < 5; k++) {
    struct sockaddr_in sa_new = mk(50000 + k);
    wzp_endpoint *cli;
    uint64_t cid;
    if (wzp_endpoint_new(&cc, (uint8_t *)&sa_new, sizeof sa_new, &cli, err, sizeof err)) { puts(err); return 1; }
    if (wzp_endpoint_connect(cli, (uint8_t *)&sa_srv, sizeof sa_srv, now_ns, &cid)) return 1;
    uint64_t sb = 0, sd = 0, cb = 0, cd = 0;
    int sconn = 0, sclosed = 0, cconn = 0, cclosed = 0, ms = 0;
    for (; ms < 2000 && !cconn && !cclosed; ms++) {
      now_ns += 1000000;
      /* The flood of this millisecond arrives spread around the newcomer's packets. */
      for (int j = 0; j < 44; j++) {
        struct sockaddr_in from = mk(20000 + j % SPOOFED);
        from.sin_addr.s_addr = htonl(0x7f000200 + (uint32_t)(j % SPOOFED) + 1);
        if (j % 11 == 10) {
          for (int b = 0; b < dcidlen; b++) flood_initial[6 + b] = (uint8_t)rand();
          wzp_endpoint_recv(srv, (uint8_t *)&from, sizeof from, flood_initial, initial_len[0], now_ns);
        } else {
          uint8_t junk[100];
          for (size_t b = 0; b < sizeof junk; b++) junk[b] = (uint8_t)rand();
          junk[0] = (uint8_t)(0x40 | (junk[0] & 0x3f));
          wzp_endpoint_recv(srv, (uint8_t *)&from, sizeof from, junk, sizeof junk, now_ns);
        }
        if (j == 22) {
          wzp_endpoint_handle_timers(cli, now_ns);
          pump(cli, srv, &sa_new, 0);
        }
      }
      wzp_endpoint_handle_timers(srv, now_ns);
      /* Replies to the spoofed addresses vanish; the newcomer's reach it. */
      uint8_t buf[2048], to[128];
      uint32_t tolen;
      int n;
      while ((n = wzp_endpoint_pop_packet(srv, buf, sizeof buf, to, sizeof to, &tolen, now_ns)) > 0) {
        struct sockaddr_in *dst = (struct sockaddr_in *)to;
        if (dst->sin_port == sa_new.sin_port && dst->sin_addr.s_addr == sa_new.sin_addr.s_addr)
          wzp_endpoint_recv(cli, (uint8_t *)&sa_srv, sizeof sa_srv, buf, (uint32_t)n, now_ns);
      }
      drain(srv, "server", &sb, &sconn, &sclosed, &sd);
      drain(cli, "client", &cb, &cconn, &cclosed, &cd);
    }
    wzp_endpoint_get_stats(srv, &st);
    printf("newcomer %d: %s after %d ms; resets %llu, retries %llu, half-open %llu\n", k,
           cconn ? "connected" : "NOT connected", ms, (unsigned long long)st.stateless_resets_sent,
           (unsigned long long)st.retries_sent, (unsigned long long)st.handshakes_in_progress);
    wzp_endpoint_free(cli);
    if (!cconn) {
      wzp_endpoint_free(srv);
      puts("FAILED: a newcomer did not get in within 2 s under the flood");
      return 1;
    }
    if (ms > worst) worst = ms;
  }
  wzp_endpoint_free(srv);
  printf("worst newcomer: %d ms\n", worst);
  puts("HARNESS OK");
  return 0;
}
