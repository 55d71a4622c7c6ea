/*
 * Sanitizer harness for wzpquic.c (run by Wzp.Quic.Tests under ASan, LeakSanitizer and UBSan):
 * a client and a server endpoint wired back to back in memory, with a simulated clock, packet
 * loss in both directions and junk fed to the server. Exits non-zero when data went missing.
 * Usage: harness CERT_PEM KEY_PEM
 */
#include "harness.h"

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  struct sockaddr_in sa_srv = mk(4433), sa_cli = mk(5555);
  wzp_config sc = {0}, cc = {0};
  char err[256];
  sc.is_server = 1; sc.alpn = "wzp/1"; sc.cert_file = argv[1]; sc.key_file = argv[2];
  cc.alpn = "wzp/1"; cc.keep_alive_ns = 1000000000ULL;
  wzp_endpoint *srv, *cli;
  if (wzp_endpoint_new(&sc, (uint8_t *)&sa_srv, sizeof sa_srv, &srv, err, sizeof err)) { puts(err); return 1; }
  if (wzp_endpoint_new(&cc, (uint8_t *)&sa_cli, sizeof sa_cli, &cli, err, sizeof err)) { puts(err); return 1; }
  uint64_t cid = 0, sid = 0, sbytes = 0, cbytes = 0, sd = 0, cd = 0;
  int sconn = 0, cconn = 0, sclosed = 0, cclosed = 0;
  if (wzp_endpoint_connect(cli, (uint8_t *)&sa_srv, sizeof sa_srv, now_ns, &cid)) return 1;
  static uint8_t big[200000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)i;
  uint64_t written = 0, swritten = 0;
  for (int round = 0; round < 3000; round++) {
    now_ns += 1000000; /* 1 ms */
    wzp_endpoint_handle_timers(cli, now_ns);
    wzp_endpoint_handle_timers(srv, now_ns);
    pump(cli, srv, &sa_cli, round > 100 ? 7 : 0);
    uint64_t s = drain(srv, "server", &sbytes, &sconn, &sclosed, &sd);
    if (s) sid = s;
    pump(srv, cli, &sa_srv, round > 100 ? 11 : 0);
    drain(cli, "client", &cbytes, &cconn, &cclosed, &cd);
    /* junk into the server */
    uint8_t junk[1300]; for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rand();
    size_t jl = 1 + (size_t)rand() % sizeof junk;
    if (round % 3 == 0) junk[0] |= 0xc0; else junk[0] = (junk[0] & 0x3f) | 0x40;
    struct sockaddr_in sa_junk = mk(6000 + round % 50);
    wzp_endpoint_recv(srv, (uint8_t *)&sa_junk, sizeof sa_junk, junk, (uint32_t)jl, now_ns);
    uint8_t b[2048], a[128]; uint32_t al; while (wzp_endpoint_pop_packet(srv, b, sizeof b, a, sizeof a, &al, now_ns) > 0) {}
    if (cconn && written < sizeof big) {
      int64_t n = wzp_conn_stream_write(cli, cid, big + written, (uint32_t)(sizeof big - written), 0, now_ns);
      if (n > 0) written += (uint64_t)n;
    }
    if (sid && sbytes > 0 && swritten < sizeof big) {
      int64_t n = wzp_conn_stream_write(srv, sid, big + swritten, 5000, 0, now_ns);
      if (n > 0) swritten += (uint64_t)n;
    }
    if (cconn) {
      uint8_t d[1200]; memset(d, round, sizeof d);
      wzp_conn_send_datagram(cli, cid, d, 160, now_ns);
      uint32_t lens[8] = {160,160,160,160,160,160,160,1200}; uint32_t sent;
      static uint8_t many[160*7+1200];
      wzp_conn_send_datagrams(cli, cid, many, lens, 8, &sent, now_ns);
      if (sid) wzp_conn_send_datagram(srv, sid, d, 1200, now_ns);
    }
  }
  /* The sendmmsg path, on a real socket: the addresses are fake, so the kernel's ICMP errors
     exercise the error handling too. */
  {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    uint8_t d[160] = {0};
    for (int i = 0; i < 200; i++) {
      if (wzp_conn_send_datagram(srv, sid, d, sizeof d, now_ns) == WZP_ERR_TX_FULL) wzp_endpoint_send_ready(srv, fd, now_ns);
      if (i % 50 == 0) wzp_endpoint_send_ready(srv, fd, now_ns);
    }
    wzp_endpoint_send_ready(srv, fd, now_ns);
    close(fd);
  }
  wzp_conn_stats st; wzp_conn_get_stats(cli, cid, &st);
  printf("connected %d/%d client->server %llu/%llu bytes, server->client %llu/%llu, dgrams s=%llu c=%llu dropped=%llu lost=%llu rtt=%llu\n",
         cconn, sconn, (unsigned long long)sbytes, (unsigned long long)written, (unsigned long long)cbytes, (unsigned long long)swritten,
         (unsigned long long)sd, (unsigned long long)cd, (unsigned long long)st.datagrams_dropped, (unsigned long long)st.datagrams_lost, (unsigned long long)st.smoothed_rtt_ns);
  wzp_conn_close(cli, cid, 42, (const uint8_t *)"bye", 3, now_ns);
  for (int round = 0; round < 5000 && (sclosed == 0); round++) {
    now_ns += 1000000;
    wzp_endpoint_handle_timers(cli, now_ns); wzp_endpoint_handle_timers(srv, now_ns);
    pump(cli, srv, &sa_cli, 0); pump(srv, cli, &sa_srv, 0);
    drain(srv, "server", &sbytes, &sconn, &sclosed, &sd); drain(cli, "client", &cbytes, &cconn, &cclosed, &cd);
  }
  for (int round = 0; round < 5000; round++) { now_ns += 10000000; wzp_endpoint_handle_timers(srv, now_ns); wzp_endpoint_handle_timers(cli, now_ns); }
  wzp_endpoint_stats es; wzp_endpoint_get_stats(srv, &es);
  printf("largest event %u bytes\n", max_event);
  printf("server conns left %llu, resets %llu, vn %llu\n", (unsigned long long)es.connections, (unsigned long long)es.stateless_resets_sent, (unsigned long long)es.version_negotiations_sent);
  wzp_endpoint_free(srv); wzp_endpoint_free(cli);
  int ok = cconn == 1 && sconn == 1 && sbytes == sizeof big && written == sizeof big && cbytes == swritten &&
           swritten == sizeof big && sd > 0 && cd > 0 && sclosed == 1 && cclosed == 1 && es.connections == 0;
  puts(ok ? "HARNESS OK" : "HARNESS FAILED");
  return ok ? 0 : 1;
}
