/*
 * Writes a starting corpus for fuzz_packet_input into DIR: genuine client Initials (raw mode) and
 * conversations that complete a handshake and exchange data (live mode), so that the fuzzer starts
 * from packets that pass the header checks and decrypt instead of having to invent TLS.
 * Usage: make_seeds DIR
 */
#include "wzpquic.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static void put_record(FILE *f, uint8_t ctl, const uint8_t *data, size_t len) {
  uint8_t h[3] = {ctl, (uint8_t)(len >> 8), (uint8_t)len};
  fwrite(h, 1, 3, f);
  if (len) fwrite(data, 1, len, f);
}

static FILE *open_seed(const char *dir, const char *name, uint8_t mode) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (f) fputc(mode, f);
  return f;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  struct sockaddr_in srv;
  memset(&srv, 0, sizeof srv);
  srv.sin_family = AF_INET;
  srv.sin_port = htons(4433);
  srv.sin_addr.s_addr = htonl(0x7f000001);
  wzp_config cc = {0};
  cc.alpn = "wzp/1";
  uint8_t initial[8][2048];
  int len[8];
  for (int i = 0; i < 8; i++) {
    char err[256];
    wzp_endpoint *c;
    uint64_t id;
    uint8_t sa[128];
    uint32_t salen;
    struct sockaddr_in me = srv;
    me.sin_port = htons((uint16_t)(5000 + i));
    if (wzp_endpoint_new(&cc, (uint8_t *)&me, sizeof me, &c, err, sizeof err) ||
        wzp_endpoint_connect(c, (uint8_t *)&srv, sizeof srv, 1000000000ULL, &id))
      return 1;
    len[i] = wzp_endpoint_pop_packet(c, initial[i], sizeof initial[i], sa, sizeof sa, &salen, 1000000000ULL);
    wzp_endpoint_free(c);
    if (len[i] <= 0) return 1;
  }
  /* Raw: one Initial; the same Initial from the other sources; three handshakes at once; junk. */
  FILE *f = open_seed(argv[1], "raw-initial", 0);
  put_record(f, 0, initial[0], (size_t)len[0]);
  fclose(f);
  f = open_seed(argv[1], "raw-initial-every-source", 0);
  for (int s = 0; s < 4; s++) put_record(f, (uint8_t)(s | 4), initial[0], (size_t)len[0]);
  fclose(f);
  f = open_seed(argv[1], "raw-three-initials", 0);
  for (int i = 0; i < 3; i++) put_record(f, (uint8_t)(i & 3), initial[i], (size_t)len[i]);
  put_record(f, 7 << 2, NULL, 0);
  fclose(f);
  /* Eight handshakes: past the fuzz listener's Retry threshold (3), its per-address limit (4) from one
     source, its silent and total limits (4 and 6) from all four. */
  f = open_seed(argv[1], "raw-eight-initials-one-source", 0);
  for (int i = 0; i < 8; i++) put_record(f, 0, initial[i], (size_t)len[i]);
  fclose(f);
  f = open_seed(argv[1], "raw-eight-initials-four-sources", 0);
  for (int i = 0; i < 8; i++) put_record(f, (uint8_t)((i & 3) | (1 << 2)), initial[i], (size_t)len[i]);
  fclose(f);
  uint8_t short_hdr[60];
  for (size_t i = 0; i < sizeof short_hdr; i++) short_hdr[i] = (uint8_t)(i * 37);
  short_hdr[0] = 0x41;
  f = open_seed(argv[1], "raw-short-header", 0);
  put_record(f, 0, short_hdr, sizeof short_hdr);
  put_record(f, 2, short_hdr, 30);
  fclose(f);
  /* Live: handshake by clean exchanges, then talk, then close (action in bits 5-7). */
  uint8_t words[300];
  for (size_t i = 0; i < sizeof words; i++) words[i] = (uint8_t)i;
  f = open_seed(argv[1], "live-talk", 1);
  for (int i = 0; i < 6; i++) put_record(f, (5 << 5) | (1 << 2), NULL, 0);
  put_record(f, (4 << 5) | (1 << 2), words, sizeof words);
  for (int i = 0; i < 4; i++) put_record(f, (5 << 5) | (1 << 2), NULL, 0);
  put_record(f, (6 << 5) | 1, words, 5);
  put_record(f, (5 << 5) | (1 << 2), NULL, 0);
  fclose(f);
  f = open_seed(argv[1], "live-corrupt", 1);
  put_record(f, (0 << 5), words, 8);
  for (int i = 0; i < 6; i++) put_record(f, (5 << 5) | (1 << 2), NULL, 0);
  put_record(f, (4 << 5), words, 64);
  put_record(f, (0 << 5) | 2, words + 20, 40);
  put_record(f, (3 << 5), short_hdr, sizeof short_hdr);
  put_record(f, (7 << 5), NULL, 0);
  put_record(f, (5 << 5) | (6 << 2), NULL, 0);
  fclose(f);
  /* Live: a handshake, then frames rewritten under encryption (action 1). */
  f = open_seed(argv[1], "live-plaintext", 1);
  for (int i = 0; i < 6; i++) put_record(f, (5 << 5) | (1 << 2), NULL, 0);
  put_record(f, (1 << 5), words, 3);
  put_record(f, (1 << 5) | (1 << 2), words + 100, 12);
  put_record(f, (5 << 5) | (1 << 2), NULL, 0);
  fclose(f);
  return 0;
}
