/*
 * wzpquic: sans-IO QUIC endpoint over ngtcp2 0.12 + GnuTLS. See wzpquic.h for the contract.
 *
 * Pitfalls of ngtcp2 0.12 this file is shaped around (measured, see shared/NOTES.md):
 * - max_datagram_frame_size defaults to 0: set on both sides or DATAGRAM is refused.
 * - DATAGRAM frames count against the congestion window; writev_datagram writes nothing when it
 *   is full. We drop and count then: media is loss tolerant and a queue would only add delay.
 * - DATAGRAM packets are not PTO-eliciting: when only they are in flight and all are lost with
 *   their ACKs, no loss timer runs and a full window never reopens. Datagrams therefore leave the
 *   window's last packet to stream data (see wzp_conn_send_datagrams).
 * - stream data is not copied: ngtcp2 keeps pointers for retransmission, so the send buffer is
 *   a list of fixed chunks that never move and are freed only once acknowledged.
 * - the server uses one fixed connection-ID length and must also route the client's original
 *   DCID; it sets original_dcid and a stateless-reset token itself.
 * - closed connections linger 3 x PTO (closing: answer with the saved CONNECTION_CLOSE;
 *   draining: silence) before they are freed.
 */
#define _GNU_SOURCE
#include "wzpquic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#define WZP_SCIDLEN 16
#define WZP_ADDR_KEY_MAX 9 /* family byte + IPv4 address or IPv6 /64 prefix */
/* Application error code of a connection closed for silence (QuicDefaults.SilentConnectionError). */
#define WZP_SILENT_ERROR 0xfffd
/* Packets waiting for the caller to send them; a client has one connection and needs fewer. */
#define WZP_TX_SLOTS_SERVER 64
#define WZP_TX_SLOTS_CLIENT 16
#define WZP_PKT_CAP 1500
#define WZP_CHUNK 16384
#define WZP_MAX_EVENTS 65536
#define WZP_MAX_KEYS 12
#define WZP_ALPN_NO_APP_PROTOCOL 120
#define WZP_ALERT_HANDSHAKE_FAILURE 40
#define WZP_ALERT_MISSING_EXTENSION 109
#define WZP_RETRY_TOKEN_TTL (10 * NGTCP2_SECONDS)
/* Stateless replies are rate limited so that a flood of junk cannot turn the server into a
   reflector. Each kind has its own budget: short-header junk is the cheapest packet to forge, and
   when resets shared one bucket with Retry, a spoofed flood of it starved the Retry that new
   clients need while Initials from spoofed addresses held the handshake slots (issue 12, defect 3).
   Retry gets a much larger budget because it cannot amplify: ngtcp2_accept only takes Initials of
   at least 1200 bytes and a Retry is under 200, so the budget only bounds the CPU spent minting
   tokens (~10 us each). */
#define WZP_RESET_BURST 200.0
#define WZP_RESET_PER_SEC 2000.0
#define WZP_RETRY_BURST 2000.0
#define WZP_RETRY_PER_SEC 50000.0
#define WZP_REPLY_BURST 200.0   /* version negotiation, refusals, invalid-token closes */
#define WZP_REPLY_PER_SEC 2000.0
/* Defaults of the silent-connection limits (wzp_config). */
#define WZP_DEFAULT_SILENT_TIMEOUT (5 * NGTCP2_SECONDS)
#define WZP_DEFAULT_MAX_SILENT 512
#define WZP_DEFAULT_MAX_SILENT_PER_ADDR 128

static const char *const WZP_PRIORITY =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
    "+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "+GROUP-SECP384R1:+GROUP-SECP521R1";

/* ------------------------------------------------------------------ hash map */
/* Open addressing keyed by up to 20 bytes. Keys of connection IDs are chosen by peers, so the
   hash is seeded per endpoint to keep collision floods from being precomputed. */
typedef struct {
  uint8_t key[NGTCP2_MAX_CIDLEN];
  uint8_t keylen; /* 0: empty, 0xff: tombstone */
  void *value;
} map_slot;

typedef struct {
  map_slot *slots;
  size_t cap, used, live;
  uint64_t seed;
} wzp_map;

static uint64_t map_hash(const wzp_map *m, const uint8_t *k, size_t n) {
  uint64_t h = 1469598103934665603ULL ^ m->seed;
  for (size_t i = 0; i < n; i++) {
    h ^= k[i];
    h *= 1099511628211ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

static int map_init(wzp_map *m, size_t cap) {
  m->slots = calloc(cap, sizeof(map_slot));
  if (!m->slots) return -1;
  m->cap = cap;
  m->used = m->live = 0;
  gnutls_rnd(GNUTLS_RND_NONCE, &m->seed, sizeof(m->seed));
  return 0;
}

static map_slot *map_find(const wzp_map *m, const uint8_t *k, size_t n) {
  size_t mask = m->cap - 1, i = (size_t)map_hash(m, k, n) & mask;
  for (;;) {
    map_slot *s = &m->slots[i];
    if (s->keylen == 0) return NULL;
    if (s->keylen == n && memcmp(s->key, k, n) == 0) return s;
    i = (i + 1) & mask;
  }
}

static void *map_get(const wzp_map *m, const uint8_t *k, size_t n) {
  if (n == 0 || n > NGTCP2_MAX_CIDLEN) return NULL;
  map_slot *s = map_find(m, k, n);
  return s ? s->value : NULL;
}

static int map_put(wzp_map *m, const uint8_t *k, size_t n, void *v);

static int map_grow(wzp_map *m) {
  wzp_map old = *m;
  size_t cap = m->live * 4 > old.cap ? old.cap * 2 : old.cap;
  m->slots = calloc(cap, sizeof(map_slot));
  if (!m->slots) {
    *m = old;
    return -1;
  }
  m->cap = cap;
  m->used = m->live = 0;
  for (size_t i = 0; i < old.cap; i++) {
    map_slot *s = &old.slots[i];
    if (s->keylen != 0 && s->keylen != 0xff) map_put(m, s->key, s->keylen, s->value);
  }
  free(old.slots);
  return 0;
}

static int map_put(wzp_map *m, const uint8_t *k, size_t n, void *v) {
  if (n == 0 || n > NGTCP2_MAX_CIDLEN) return -1;
  map_slot *s = map_find(m, k, n);
  if (s) {
    s->value = v;
    return 0;
  }
  if ((m->used + 1) * 2 > m->cap && map_grow(m) != 0) return -1;
  size_t mask = m->cap - 1, i = (size_t)map_hash(m, k, n) & mask;
  for (;;) {
    s = &m->slots[i];
    if (s->keylen == 0 || s->keylen == 0xff) break;
    i = (i + 1) & mask;
  }
  if (s->keylen == 0) m->used++;
  memcpy(s->key, k, n);
  s->keylen = (uint8_t)n;
  s->value = v;
  m->live++;
  return 0;
}

static void map_del(wzp_map *m, const uint8_t *k, size_t n) {
  if (n == 0 || n > NGTCP2_MAX_CIDLEN) return;
  map_slot *s = map_find(m, k, n);
  if (s) {
    s->keylen = 0xff;
    s->value = NULL;
    m->live--;
  }
}

/* ------------------------------------------------------------------ types */
typedef struct chunk {
  struct chunk *next;
  size_t len;
  uint8_t data[WZP_CHUNK];
} chunk;

typedef struct event_node {
  struct event_node *next;
  wzp_event ev;
  uint8_t data[];
} event_node;

enum { CONN_OPEN = 0, CONN_CLOSING = 1, CONN_DRAINING = 2 };

typedef struct wzp_conn {
  wzp_endpoint *ep;
  uint64_t id;
  ngtcp2_conn *conn;
  gnutls_session_t session;
  ngtcp2_crypto_conn_ref conn_ref;
  int is_server;
  int state;
  int closed_emitted;
  int connected;
  int got_crypto;      /* a ClientHello (or ServerHello) was read: the first packet was real */
  int got_reset;
  /* Server side: no application data (stream bytes or a datagram) received yet. Silent
     connections, handshakes in progress included, sit on the endpoint's FIFO until they speak,
     are closed at silent_deadline, or make room for a newcomer when a limit is reached. */
  int silent;
  uint64_t silent_deadline;
  struct wzp_conn *silent_prev, *silent_next;
  uint64_t close_deadline;
  uint64_t close_rx_count;
  uint8_t *closebuf;
  size_t closebuflen;
  struct sockaddr_storage remote;
  socklen_t remotelen;
  uint8_t addr_key[WZP_ADDR_KEY_MAX];
  size_t addr_keylen;
  /* routing keys owned by this connection */
  uint8_t keys[WZP_MAX_KEYS][NGTCP2_MAX_CIDLEN];
  uint8_t keylens[WZP_MAX_KEYS];
  /* timer heap */
  size_t heap_idx;
  uint64_t expiry;
  /* dirty list: connections with something to write */
  struct wzp_conn *dirty_prev, *dirty_next;
  int in_dirty;
  /* all connections */
  struct wzp_conn *prev, *next;
  /* control stream */
  int64_t sid;
  chunk *shead, *stail;
  uint64_t sbase;    /* stream offset of shead->data[0] */
  uint64_t sappend;  /* stream offset after the last appended byte */
  uint64_t ssent;    /* stream offset up to which data was handed to ngtcp2 */
  uint64_t sacked;   /* stream offset up to which the peer acknowledged */
  int fin_requested, fin_sent, write_blocked, stream_data_blocked;
  /* counters */
  uint64_t dgram_sent, dgram_recv, dgram_dropped, dgram_lost, pkts_sent, pkts_recv;
} wzp_conn;

typedef struct {
  double tokens, burst, per_sec;
  uint64_t ts;
} wzp_bucket;

typedef struct {
  size_t len;
  socklen_t salen;
  struct sockaddr_storage sa;
  uint8_t data[WZP_PKT_CAP];
} tx_slot;

struct wzp_endpoint {
  int is_server;
  char *alpn;
  size_t alpnlen;
  char *server_name;
  int verify;
  gnutls_certificate_credentials_t cred;
  uint64_t idle_timeout, handshake_timeout, keep_alive;
  uint64_t max_dgram_frame, max_conns, max_conns_per_addr, require_retry, retry_threshold;
  uint64_t handshaking; /* server connections whose handshake has not completed */
  uint64_t silent_timeout, max_silent, max_silent_per_addr;
  uint64_t nsilent;
  wzp_conn *silent_head, *silent_tail; /* oldest first */
  uint64_t stream_window, max_send_buffer, peer_uni_streams;
  struct sockaddr_storage local;
  socklen_t locallen;
  uint8_t secret[32];
  uint64_t next_id;
  wzp_map cids, ids, addrs, silent_addrs;
  wzp_conn *conns;
  size_t nconns;
  wzp_conn **heap;
  size_t heaplen, heapcap;
  wzp_conn *dirty_head, *dirty_tail;
  tx_slot *tx;
  size_t tx_slots, tx_head, tx_count;
  int tx_blocked; /* the last send_ready stopped at a full socket buffer */
  uint32_t fail_sends; /* tests: send_ready calls still to fail as if the socket were full */
  event_node *ev_head, *ev_tail;
  size_t ev_count;
  wzp_bucket reset_budget, retry_budget, reply_budget;
  wzp_endpoint_stats stats;
};

/* ------------------------------------------------------------------ helpers */
static void rand_bytes(void *dest, size_t len) {
  /* GNUTLS_RND_RANDOM: unpredictable values (connection IDs and tokens must not be guessable). */
  gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

static void rand_cb(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *rand_ctx) {
  (void)rand_ctx;
  rand_bytes(dest, destlen);
}

static void bucket_init(wzp_bucket *b, double burst, double per_sec) {
  b->tokens = b->burst = burst;
  b->per_sec = per_sec;
  b->ts = 0;
}

static int bucket_take(wzp_bucket *b, uint64_t now) {
  if (now > b->ts) {
    b->tokens += (double)(now - b->ts) * b->per_sec / 1e9;
    if (b->tokens > b->burst) b->tokens = b->burst;
    b->ts = now;
  }
  if (b->tokens < 1.0) return 0;
  b->tokens -= 1.0;
  return 1;
}

/* The unit of per-address limits. An IPv6 host is routinely given a whole /64 (SLAAC, privacy
   addresses), so one attacker holds 2^64 addresses there: per-/128 limits bound nothing
   (issue 12, defect 4). IPv6 therefore counts by /64; IPv4, and IPv4-mapped IPv6, by address. */
static size_t addr_key(const struct sockaddr *sa, uint8_t *key) {
  if (sa->sa_family == AF_INET) {
    key[0] = 4;
    memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 5;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    /* An IPv4-mapped address counts as its IPv4 address. */
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      key[0] = 4;
      memcpy(key + 1, s6->sin6_addr.s6_addr + 12, 4);
      return 5;
    }
    key[0] = 6;
    memcpy(key + 1, &s6->sin6_addr, 8);
    return 9;
  }
  return 0;
}

static int valid_sockaddr(const uint8_t *sa, uint32_t salen) {
  if (!sa || salen < sizeof(sa_family_t) || salen > sizeof(struct sockaddr_storage)) return 0;
  sa_family_t fam;
  memcpy(&fam, sa, sizeof(fam));
  if (fam == AF_INET) return salen >= sizeof(struct sockaddr_in);
  if (fam == AF_INET6) return salen >= sizeof(struct sockaddr_in6);
  return 0;
}

static tx_slot *tx_reserve(wzp_endpoint *ep) {
  if (ep->tx_count == ep->tx_slots) return NULL;
  return &ep->tx[(ep->tx_head + ep->tx_count) % ep->tx_slots];
}

static void tx_commit(wzp_endpoint *ep, tx_slot *slot, size_t len, const ngtcp2_addr *remote) {
  slot->len = len;
  slot->salen = (socklen_t)remote->addrlen;
  memcpy(&slot->sa, remote->addr, remote->addrlen);
  ep->tx_count++;
}

static void tx_enqueue_raw(wzp_endpoint *ep, const uint8_t *data, size_t len,
                           const struct sockaddr *sa, socklen_t salen) {
  tx_slot *slot = tx_reserve(ep);
  if (!slot || len > WZP_PKT_CAP) return;
  memcpy(slot->data, data, len);
  ngtcp2_addr a = {(ngtcp2_sockaddr *)sa, (ngtcp2_socklen)salen};
  tx_commit(ep, slot, len, &a);
}

static void emit(wzp_endpoint *ep, wzp_conn *c, uint32_t type, uint32_t flags, uint64_t code,
                 int64_t sid, const uint8_t *data, size_t len) {
  if (ep->ev_count >= WZP_MAX_EVENTS && type == WZP_EV_DATAGRAM) {
    /* The caller stopped draining events; media is the one thing we may shed. */
    ep->stats.events_dropped++;
    return;
  }
  event_node *n = malloc(sizeof(event_node) + len);
  if (!n) {
    ep->stats.events_dropped++;
    return;
  }
  n->next = NULL;
  n->ev.conn_id = c->id;
  n->ev.type = type;
  n->ev.flags = flags;
  n->ev.code = code;
  n->ev.stream_id = sid;
  n->ev.data_len = (uint32_t)len;
  n->ev.reserved = 0;
  if (len) memcpy(n->data, data, len);
  if (ep->ev_tail)
    ep->ev_tail->next = n;
  else
    ep->ev_head = n;
  ep->ev_tail = n;
  ep->ev_count++;
}

/* ------------------------------------------------------------------ timer heap */
static void heap_swap(wzp_endpoint *ep, size_t a, size_t b) {
  wzp_conn *t = ep->heap[a];
  ep->heap[a] = ep->heap[b];
  ep->heap[b] = t;
  ep->heap[a]->heap_idx = a;
  ep->heap[b]->heap_idx = b;
}

static void heap_up(wzp_endpoint *ep, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (ep->heap[p]->expiry <= ep->heap[i]->expiry) break;
    heap_swap(ep, p, i);
    i = p;
  }
}

static void heap_down(wzp_endpoint *ep, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < ep->heaplen && ep->heap[l]->expiry < ep->heap[m]->expiry) m = l;
    if (r < ep->heaplen && ep->heap[r]->expiry < ep->heap[m]->expiry) m = r;
    if (m == i) break;
    heap_swap(ep, i, m);
    i = m;
  }
}

static int heap_push(wzp_endpoint *ep, wzp_conn *c) {
  if (ep->heaplen == ep->heapcap) {
    size_t cap = ep->heapcap ? ep->heapcap * 2 : 64;
    wzp_conn **h = realloc(ep->heap, cap * sizeof(*h));
    if (!h) return -1;
    ep->heap = h;
    ep->heapcap = cap;
  }
  c->heap_idx = ep->heaplen;
  ep->heap[ep->heaplen++] = c;
  heap_up(ep, c->heap_idx);
  return 0;
}

static void heap_remove(wzp_endpoint *ep, wzp_conn *c) {
  size_t i = c->heap_idx;
  if (i >= ep->heaplen || ep->heap[i] != c) return;
  ep->heaplen--;
  if (i != ep->heaplen) {
    heap_swap(ep, i, ep->heaplen);
    heap_down(ep, i);
    heap_up(ep, i);
  }
  c->heap_idx = SIZE_MAX;
}

static void update_timer(wzp_conn *c) {
  uint64_t e = c->state == CONN_OPEN ? ngtcp2_conn_get_expiry(c->conn) : c->close_deadline;
  if (c->silent && c->silent_deadline < e) e = c->silent_deadline;
  if (e == c->expiry) return;
  uint64_t old = c->expiry;
  c->expiry = e;
  if (e < old)
    heap_up(c->ep, c->heap_idx);
  else
    heap_down(c->ep, c->heap_idx);
}

/* ------------------------------------------------------------------ dirty list */
static void mark_dirty(wzp_conn *c) {
  wzp_endpoint *ep = c->ep;
  if (c->in_dirty) return;
  c->in_dirty = 1;
  c->dirty_next = NULL;
  c->dirty_prev = ep->dirty_tail;
  if (ep->dirty_tail)
    ep->dirty_tail->dirty_next = c;
  else
    ep->dirty_head = c;
  ep->dirty_tail = c;
}

static void unmark_dirty(wzp_conn *c) {
  wzp_endpoint *ep = c->ep;
  if (!c->in_dirty) return;
  if (c->dirty_prev)
    c->dirty_prev->dirty_next = c->dirty_next;
  else
    ep->dirty_head = c->dirty_next;
  if (c->dirty_next)
    c->dirty_next->dirty_prev = c->dirty_prev;
  else
    ep->dirty_tail = c->dirty_prev;
  c->in_dirty = 0;
  c->dirty_prev = c->dirty_next = NULL;
}

/* ------------------------------------------------------------------ silent connections */
static void count_silent(wzp_endpoint *ep, const wzp_conn *c, int delta) {
  if (!c->addr_keylen) return;
  uintptr_t n = (uintptr_t)map_get(&ep->silent_addrs, c->addr_key, c->addr_keylen);
  if (delta < 0 && n <= 1)
    map_del(&ep->silent_addrs, c->addr_key, c->addr_keylen);
  else
    map_put(&ep->silent_addrs, c->addr_key, c->addr_keylen, (void *)(n + (uintptr_t)delta));
}

static void silent_add(wzp_conn *c, uint64_t now) {
  wzp_endpoint *ep = c->ep;
  c->silent = 1;
  c->silent_deadline = now + ep->silent_timeout;
  c->silent_next = NULL;
  c->silent_prev = ep->silent_tail;
  if (ep->silent_tail)
    ep->silent_tail->silent_next = c;
  else
    ep->silent_head = c;
  ep->silent_tail = c;
  ep->nsilent++;
  count_silent(ep, c, 1);
}

/* The connection spoke (or is closing): it no longer holds a silent slot nor runs the deadline. */
static void silent_remove(wzp_conn *c) {
  wzp_endpoint *ep = c->ep;
  if (!c->silent) return;
  if (c->silent_prev)
    c->silent_prev->silent_next = c->silent_next;
  else
    ep->silent_head = c->silent_next;
  if (c->silent_next)
    c->silent_next->silent_prev = c->silent_prev;
  else
    ep->silent_tail = c->silent_prev;
  c->silent = 0;
  c->silent_prev = c->silent_next = NULL;
  ep->nsilent--;
  count_silent(ep, c, -1);
}

/* ------------------------------------------------------------------ connection lifetime */
static int add_key(wzp_conn *c, const uint8_t *k, size_t n) {
  for (int i = 0; i < WZP_MAX_KEYS; i++) {
    if (c->keylens[i] == 0) {
      if (map_put(&c->ep->cids, k, n, c) != 0) return -1;
      memcpy(c->keys[i], k, n);
      c->keylens[i] = (uint8_t)n;
      return 0;
    }
  }
  return -1;
}

static void remove_key(wzp_conn *c, const uint8_t *k, size_t n) {
  for (int i = 0; i < WZP_MAX_KEYS; i++) {
    if (c->keylens[i] == n && memcmp(c->keys[i], k, n) == 0) {
      if (map_get(&c->ep->cids, k, n) == c) map_del(&c->ep->cids, k, n);
      c->keylens[i] = 0;
      return;
    }
  }
}

static void conn_free(wzp_conn *c) {
  wzp_endpoint *ep = c->ep;
  if (c->is_server && !c->connected) ep->handshaking--;
  silent_remove(c);
  for (int i = 0; i < WZP_MAX_KEYS; i++)
    if (c->keylens[i]) remove_key(c, c->keys[i], c->keylens[i]);
  map_del(&ep->ids, (const uint8_t *)&c->id, sizeof(c->id));
  if (c->addr_keylen) {
    uintptr_t n = (uintptr_t)map_get(&ep->addrs, c->addr_key, c->addr_keylen);
    if (n <= 1)
      map_del(&ep->addrs, c->addr_key, c->addr_keylen);
    else
      map_put(&ep->addrs, c->addr_key, c->addr_keylen, (void *)(n - 1));
  }
  heap_remove(ep, c);
  unmark_dirty(c);
  if (c->prev)
    c->prev->next = c->next;
  else
    ep->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  ep->nconns--;
  if (c->conn) ngtcp2_conn_del(c->conn);
  if (c->session) gnutls_deinit(c->session);
  for (chunk *k = c->shead; k;) {
    chunk *n = k->next;
    free(k);
    k = n;
  }
  free(c->closebuf);
  free(c);
}

static void emit_closed(wzp_conn *c, uint32_t flags, uint64_t code, const uint8_t *reason,
                        size_t reasonlen) {
  if (c->closed_emitted) return;
  c->closed_emitted = 1;
  emit(c->ep, c, WZP_EV_CLOSED, flags, code, -1, reason, reasonlen);
}

static void enter_draining(wzp_conn *c, uint64_t now) {
  ngtcp2_connection_close_error ccerr;
  ngtcp2_conn_get_connection_close_error(c->conn, &ccerr);
  uint32_t flags = WZP_CLOSE_REMOTE;
  if (ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION)
    flags |= WZP_CLOSE_APPLICATION;
  /* A stateless reset also ends in draining, but carries no CONNECTION_CLOSE frame. */
  if (c->got_reset) flags = WZP_CLOSE_REMOTE | WZP_CLOSE_STATELESS_RESET;
  emit_closed(c, flags, ccerr.error_code, ccerr.reason, ccerr.reasonlen);
  silent_remove(c);
  c->state = CONN_DRAINING;
  c->close_deadline = now + 3 * ngtcp2_conn_get_pto(c->conn);
  unmark_dirty(c);
  update_timer(c);
}

/* Sends CONNECTION_CLOSE and keeps it to answer late packets during the closing period. */
static void close_local(wzp_conn *c, const ngtcp2_connection_close_error *ccerr, uint64_t now) {
  if (c->state != CONN_OPEN) return;
  wzp_endpoint *ep = c->ep;
  uint32_t flags = ccerr->type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION
                       ? WZP_CLOSE_APPLICATION
                       : 0;
  emit_closed(c, flags, ccerr->error_code, ccerr->reason, ccerr->reasonlen);
  if (!ngtcp2_conn_is_in_closing_period(c->conn) && !ngtcp2_conn_is_in_draining_period(c->conn)) {
    uint8_t buf[WZP_PKT_CAP];
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->conn, &ps.path, &pi, buf, sizeof(buf),
                                                        ccerr, now);
    if (n > 0) {
      c->closebuf = malloc((size_t)n);
      if (c->closebuf) {
        memcpy(c->closebuf, buf, (size_t)n);
        c->closebuflen = (size_t)n;
      }
      tx_enqueue_raw(ep, buf, (size_t)n, (const struct sockaddr *)ps.path.remote.addr,
                     (socklen_t)ps.path.remote.addrlen);
      c->pkts_sent++;
    }
  }
  silent_remove(c);
  c->state = CONN_CLOSING;
  c->close_deadline = now + 3 * ngtcp2_conn_get_pto(c->conn);
  unmark_dirty(c);
  update_timer(c);
}

static void fail_conn(wzp_conn *c, int liberr, uint64_t now) {
  ngtcp2_connection_close_error ccerr;
  ngtcp2_connection_close_error_default(&ccerr);
  if (liberr == NGTCP2_ERR_CRYPTO) {
    uint8_t alert = ngtcp2_conn_get_tls_alert(c->conn);
    if (alert == 0) {
      /* GnuTLS reports alerts it sends only through its return code, which ngtcp2's glue
         swallows; a missing ALPN is the failure our callers care to tell apart. */
      gnutls_datum_t sel;
      alert = gnutls_alpn_get_selected_protocol(c->session, &sel) != 0 ? WZP_ALPN_NO_APP_PROTOCOL
                                                                      : WZP_ALERT_HANDSHAKE_FAILURE;
    }
    ngtcp2_connection_close_error_set_transport_error_tls_alert(&ccerr, alert, NULL, 0);
  } else {
    ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, liberr, NULL, 0);
  }
  close_local(c, &ccerr, now);
}

/* Closes a connection that sent no application data in time, or that makes room for a newcomer,
   and frees it at once: a closing connection would keep its slot for 3 x PTO. The client is told
   (CONNECTION_CLOSE, which the closed event mirrors) so that a slow but honest one retries instead
   of waiting out its handshake timeout. Never called from inside an ngtcp2 callback. */
static void close_silent(wzp_conn *c, uint64_t now) {
  wzp_endpoint *ep = c->ep;
  ngtcp2_connection_close_error ccerr;
  ngtcp2_connection_close_error_default(&ccerr);
  static const uint8_t reason[] = "silent";
  if (c->connected)
    ngtcp2_connection_close_error_set_application_error(&ccerr, WZP_SILENT_ERROR, reason,
                                                        sizeof(reason) - 1);
  else
    ngtcp2_connection_close_error_set_transport_error(&ccerr, NGTCP2_CONNECTION_REFUSED, reason,
                                                      sizeof(reason) - 1);
  close_local(c, &ccerr, now);
  ep->stats.silent_closed++;
  conn_free(c);
}

/* ------------------------------------------------------------------ ngtcp2 callbacks */
static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  return ((wzp_conn *)ref->user_data)->conn;
}

static int recv_crypto_data_cb(ngtcp2_conn *conn, ngtcp2_crypto_level level, uint64_t offset,
                               const uint8_t *data, size_t datalen, void *user_data) {
  ((wzp_conn *)user_data)->got_crypto = 1;
  return ngtcp2_crypto_recv_crypto_data_cb(conn, level, offset, data, datalen, user_data);
}

static int handshake_completed_cb(ngtcp2_conn *conn, void *user_data) {
  (void)conn;
  wzp_conn *c = user_data;
  gnutls_datum_t sel;
  c->connected = 1;
  if (c->is_server) c->ep->handshaking--;
  if (gnutls_alpn_get_selected_protocol(c->session, &sel) != 0) {
    sel.data = NULL;
    sel.size = 0;
  }
  emit(c->ep, c, WZP_EV_CONNECTED, 0, 0, -1, sel.data, sel.size);
  return 0;
}

static int recv_stream_data_cb(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
                               uint64_t offset, const uint8_t *data, size_t datalen,
                               void *user_data, void *stream_user_data) {
  (void)offset;
  (void)stream_user_data;
  wzp_conn *c = user_data;
  /* The control stream is the first client-initiated bidirectional one (id % 4 == 0). */
  if (c->sid < 0 && c->is_server && (stream_id & 0x3) == 0) c->sid = stream_id;
  if (stream_id != c->sid) {
    /* Only unidirectional streams allowed for interop tests (HTTP/3 peers insist on opening
       their control streams) get here; their bytes are ignored but the connection-level window
       still has to move on for the connection not to stall. */
    ngtcp2_conn_extend_max_offset(conn, datalen);
    return 0;
  }
  if (datalen) {
    silent_remove(c);
    emit(c->ep, c, WZP_EV_STREAM_DATA, 0, 0, stream_id, data, datalen);
  }
  if (flags & NGTCP2_STREAM_DATA_FLAG_FIN) emit(c->ep, c, WZP_EV_STREAM_FIN, 0, 0, stream_id, NULL, 0);
  return 0;
}

static int stream_reset_cb(ngtcp2_conn *conn, int64_t stream_id, uint64_t final_size,
                           uint64_t app_error_code, void *user_data, void *stream_user_data) {
  (void)conn;
  (void)final_size;
  (void)stream_user_data;
  wzp_conn *c = user_data;
  if (stream_id == c->sid)
    emit(c->ep, c, WZP_EV_STREAM_FIN, 1, app_error_code, stream_id, NULL, 0);
  return 0;
}

static void free_acked_chunks(wzp_conn *c) {
  while (c->shead && c->sbase + c->shead->len <= c->sacked &&
         (c->shead != c->stail || c->shead->len == WZP_CHUNK)) {
    chunk *k = c->shead;
    c->sbase += k->len;
    c->shead = k->next;
    if (!c->shead) c->stail = NULL;
    free(k);
  }
}

static int acked_stream_data_offset_cb(ngtcp2_conn *conn, int64_t stream_id, uint64_t offset,
                                       uint64_t datalen, void *user_data,
                                       void *stream_user_data) {
  (void)conn;
  (void)stream_user_data;
  wzp_conn *c = user_data;
  if (stream_id != c->sid) return 0;
  if (offset + datalen > c->sacked) c->sacked = offset + datalen;
  free_acked_chunks(c);
  if (c->write_blocked && c->sappend - c->sacked < c->ep->max_send_buffer) {
    c->write_blocked = 0;
    emit(c->ep, c, WZP_EV_STREAM_WRITABLE, 0, 0, c->sid, NULL, 0);
  }
  return 0;
}

static int recv_datagram_cb(ngtcp2_conn *conn, uint32_t flags, const uint8_t *data,
                            size_t datalen, void *user_data) {
  (void)conn;
  (void)flags;
  wzp_conn *c = user_data;
  c->dgram_recv++;
  silent_remove(c);
  emit(c->ep, c, WZP_EV_DATAGRAM, 0, 0, -1, data, datalen);
  return 0;
}

static int recv_stateless_reset_cb(ngtcp2_conn *conn, const ngtcp2_pkt_stateless_reset *sr,
                                   void *user_data) {
  (void)conn;
  (void)sr;
  ((wzp_conn *)user_data)->got_reset = 1;
  return 0;
}

static int lost_datagram_cb(ngtcp2_conn *conn, uint64_t dgram_id, void *user_data) {
  (void)conn;
  (void)dgram_id;
  ((wzp_conn *)user_data)->dgram_lost++;
  return 0;
}

static int get_new_connection_id_cb(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token,
                                    size_t cidlen, void *user_data) {
  (void)conn;
  wzp_conn *c = user_data;
  rand_bytes(cid->data, cidlen);
  cid->datalen = cidlen;
  if (ngtcp2_crypto_generate_stateless_reset_token(token, c->ep->secret, sizeof(c->ep->secret),
                                                   cid) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  if (add_key(c, cid->data, cid->datalen) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int remove_connection_id_cb(ngtcp2_conn *conn, const ngtcp2_cid *cid, void *user_data) {
  (void)conn;
  remove_key(user_data, cid->data, cid->datalen);
  return 0;
}

#ifdef WZP_FUZZ
/* Fuzz builds only (fuzz/fuzz_packet_input.c): the fuzzer cannot forge packets that decrypt, so a
   client's plaintext is XORed with fuzzer bytes just before it is sealed. The listener then
   decrypts arbitrary frames, which is how frame handling and its error paths get fuzzed. */
const uint8_t *wzp_fuzz_xor;
size_t wzp_fuzz_xorlen;

static int fuzz_encrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
                           const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *plaintext,
                           size_t plaintextlen, const uint8_t *nonce, size_t noncelen,
                           const uint8_t *aad, size_t aadlen) {
  static uint8_t buf[WZP_PKT_CAP + 64];
  if (wzp_fuzz_xorlen && plaintextlen <= sizeof(buf)) {
    memcpy(buf, plaintext, plaintextlen);
    for (size_t i = 0; i < plaintextlen && i < wzp_fuzz_xorlen; i++) buf[i] ^= wzp_fuzz_xor[i];
    wzp_fuzz_xorlen = 0;
    plaintext = buf;
  }
  return ngtcp2_crypto_encrypt_cb(dest, aead, aead_ctx, plaintext, plaintextlen, nonce, noncelen,
                                  aad, aadlen);
}
#endif

static void fill_callbacks(ngtcp2_callbacks *cb, int is_server) {
  memset(cb, 0, sizeof(*cb));
  if (is_server) {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
  }
  cb->recv_crypto_data = recv_crypto_data_cb;
  cb->handshake_completed = handshake_completed_cb;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
#ifdef WZP_FUZZ
  if (!is_server) cb->encrypt = fuzz_encrypt_cb;
#endif
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->recv_stream_data = recv_stream_data_cb;
  cb->acked_stream_data_offset = acked_stream_data_offset_cb;
  cb->stream_reset = stream_reset_cb;
  cb->rand = rand_cb;
  cb->get_new_connection_id = get_new_connection_id_cb;
  cb->remove_connection_id = remove_connection_id_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->recv_datagram = recv_datagram_cb;
  cb->lost_datagram = lost_datagram_cb;
  cb->recv_stateless_reset = recv_stateless_reset_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
}

/* ------------------------------------------------------------------ TLS session */
static int alpn_hook(gnutls_session_t session, unsigned int htype, unsigned when,
                     unsigned int incoming, const gnutls_datum_t *msg) {
  (void)htype;
  (void)when;
  (void)incoming;
  (void)msg;
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
  wzp_conn *c = ref->user_data;
  gnutls_datum_t sel;
  if (gnutls_alpn_get_selected_protocol(session, &sel) != 0 || sel.size != c->ep->alpnlen ||
      memcmp(sel.data, c->ep->alpn, sel.size) != 0) {
    ngtcp2_conn_set_tls_alert(c->conn, WZP_ALPN_NO_APP_PROTOCOL);
    return -1;
  }
  /* RFC 9001 8.2: a ClientHello without quic_transport_parameters is a missing_extension error.
     ngtcp2 0.12's GnuTLS glue does not check, and the handshake then went on with no negotiated
     version until ngtcp2 asserted on the next 1-RTT write, aborting the process. Anyone can send
     such an Initial (its keys are public). Found by fuzz/fuzz_packet_input.c. */
  if (!ngtcp2_conn_get_remote_transport_params(c->conn)) {
    ngtcp2_conn_set_tls_alert(c->conn, WZP_ALERT_MISSING_EXTENSION);
    return -1;
  }
  return 0;
}

static int session_new(wzp_conn *c) {
  wzp_endpoint *ep = c->ep;
  unsigned flags = c->is_server ? (GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET)
                                : (GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA);
  if (gnutls_init(&c->session, flags) != 0) {
    c->session = NULL;
    return -1;
  }
  if (gnutls_priority_set_direct(c->session, WZP_PRIORITY, NULL) != 0) return -1;
  int rv = c->is_server ? ngtcp2_crypto_gnutls_configure_server_session(c->session)
                        : ngtcp2_crypto_gnutls_configure_client_session(c->session);
  if (rv != 0) return -1;
  c->conn_ref.get_conn = get_conn;
  c->conn_ref.user_data = c;
  gnutls_session_set_ptr(c->session, &c->conn_ref);
  if (gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, ep->cred) != 0) return -1;
  gnutls_datum_t alpn = {(unsigned char *)ep->alpn, (unsigned int)ep->alpnlen};
  if (gnutls_alpn_set_protocols(c->session, &alpn, 1,
                                GNUTLS_ALPN_MANDATORY |
                                    (c->is_server ? GNUTLS_ALPN_SERVER_PRECEDENCE : 0)) != 0)
    return -1;
  if (c->is_server) {
    gnutls_handshake_set_hook_function(c->session, GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_POST,
                                       alpn_hook);
  } else {
    const char *name = ep->server_name ? ep->server_name : "localhost";
    gnutls_server_name_set(c->session, GNUTLS_NAME_DNS, name, strlen(name));
    if (ep->verify) gnutls_session_set_verify_cert(c->session, name, 0);
  }
  return 0;
}

/* ------------------------------------------------------------------ connection creation */
static wzp_conn *conn_alloc(wzp_endpoint *ep, int is_server, const struct sockaddr *remote,
                            socklen_t remotelen) {
  wzp_conn *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->ep = ep;
  c->id = ++ep->next_id;
  c->is_server = is_server;
  if (is_server) ep->handshaking++;
  c->sid = -1;
  c->heap_idx = SIZE_MAX;
  c->expiry = UINT64_MAX;
  memcpy(&c->remote, remote, remotelen);
  c->remotelen = remotelen;
  c->next = ep->conns;
  if (ep->conns) ep->conns->prev = c;
  ep->conns = c;
  ep->nconns++;
  if (map_put(&ep->ids, (const uint8_t *)&c->id, sizeof(c->id), c) != 0 || heap_push(ep, c) != 0) {
    conn_free(c);
    return NULL;
  }
  return c;
}

static void fill_params(wzp_endpoint *ep, ngtcp2_transport_params *params) {
  ngtcp2_transport_params_default(params);
  params->initial_max_stream_data_bidi_local = ep->stream_window;
  params->initial_max_stream_data_bidi_remote = ep->stream_window;
  params->initial_max_stream_data_uni = 0;
  params->initial_max_data = ep->stream_window * 2;
  /* One control stream per connection, opened by the client. */
  params->initial_max_streams_bidi = ep->is_server ? 1 : 0;
  params->initial_max_streams_uni = ep->peer_uni_streams;
  params->initial_max_stream_data_uni = ep->peer_uni_streams ? 4096 : 0;
  params->max_idle_timeout = ep->idle_timeout;
  params->max_datagram_frame_size = ep->max_dgram_frame;
  params->active_connection_id_limit = 4;
}

static void fill_settings(wzp_endpoint *ep, ngtcp2_settings *settings, uint64_t now) {
  ngtcp2_settings_default(settings);
  settings->initial_ts = now;
  settings->handshake_timeout = ep->handshake_timeout;
  /* Media is DATAGRAM-only traffic; acknowledging every second packet (the default) costs the
     receiver one send per two received. Eight still acks well within max_ack_delay (25 ms) at
     voice rates and keeps the congestion controller fed under load. */
  settings->ack_thresh = 8;
}

static ngtcp2_path make_path(wzp_endpoint *ep, const struct sockaddr *remote, socklen_t remotelen) {
  ngtcp2_path p;
  p.local.addr = (ngtcp2_sockaddr *)&ep->local;
  p.local.addrlen = ep->locallen;
  p.remote.addr = (ngtcp2_sockaddr *)remote;
  p.remote.addrlen = remotelen;
  p.user_data = NULL;
  return p;
}

/* ------------------------------------------------------------------ writing */
/* Writes everything the connection has to say (stream data, ACKs, retransmissions) into the
   tx ring. Leaves the connection on the dirty list when the ring fills up. */
static void flush_conn(wzp_conn *c, uint64_t now) {
  wzp_endpoint *ep = c->ep;
  if (c->state != CONN_OPEN) {
    unmark_dirty(c);
    return;
  }
  int stream_blocked = 0;
  for (;;) {
    tx_slot *slot = tx_reserve(ep);
    if (!slot) {
      mark_dirty(c);
      update_timer(c);
      return;
    }
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    size_t cap = ngtcp2_conn_get_max_tx_udp_payload_size(c->conn);
    if (cap > WZP_PKT_CAP) cap = WZP_PKT_CAP;
    ngtcp2_ssize n;
    uint64_t unsent = c->sappend - c->ssent;
    int want_fin = c->fin_requested && !c->fin_sent;
    if (c->sid >= 0 && !stream_blocked && (unsent > 0 || want_fin)) {
      ngtcp2_vec vec[8];
      size_t cnt = 0;
      uint64_t off = c->sbase;
      for (chunk *k = c->shead; k && cnt < 8; off += k->len, k = k->next) {
        if (off + k->len <= c->ssent) continue;
        size_t skip = (size_t)(c->ssent > off ? c->ssent - off : 0);
        vec[cnt].base = k->data + skip;
        vec[cnt].len = k->len - skip;
        cnt++;
      }
      uint64_t offered = 0;
      for (size_t i = 0; i < cnt; i++) offered += vec[i].len;
      uint32_t flags = (want_fin && offered == unsent) ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0;
      ngtcp2_ssize ndatalen = -1;
      n = ngtcp2_conn_writev_stream(c->conn, &ps.path, &pi, slot->data, cap, &ndatalen, flags,
                                    c->sid, vec, cnt, now);
      if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
          n == NGTCP2_ERR_STREAM_NOT_FOUND) {
        stream_blocked = 1;
        continue;
      }
      if (ndatalen >= 0) {
        c->ssent += (uint64_t)ndatalen;
        if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && (uint64_t)ndatalen == offered) c->fin_sent = 1;
      }
    } else {
      n = ngtcp2_conn_write_pkt(c->conn, &ps.path, &pi, slot->data, cap, now);
    }
    if (n < 0) {
      fail_conn(c, (int)n, now);
      return;
    }
    if (n == 0) break;
    tx_commit(ep, slot, (size_t)n, &ps.path.remote);
    c->pkts_sent++;
  }
  unmark_dirty(c);
  update_timer(c);
}

/* ------------------------------------------------------------------ stateless replies */
static void send_stateless_reset(wzp_endpoint *ep, const uint8_t *dcid, size_t dcidlen,
                                 size_t pktlen, const struct sockaddr *sa, socklen_t salen,
                                 uint64_t now) {
  /* Only for our own CID length, and always smaller than the trigger so that two endpoints
     cannot ping-pong resets forever. */
  if (dcidlen != WZP_SCIDLEN || pktlen < 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN + 1)
    return;
  size_t randlen = pktlen - 1 - NGTCP2_STATELESS_RESET_TOKENLEN - 1;
  if (randlen > 40) randlen = 40;
  if (randlen < NGTCP2_MIN_STATELESS_RESET_RANDLEN) return;
  if (!bucket_take(&ep->reset_budget, now)) return;
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, dcid, dcidlen);
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN], rnd[64], buf[128];
  if (ngtcp2_crypto_generate_stateless_reset_token(token, ep->secret, sizeof(ep->secret), &cid) != 0)
    return;
  rand_bytes(rnd, randlen);
  ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf, sizeof(buf), token, rnd, randlen);
  if (n <= 0) return;
  tx_enqueue_raw(ep, buf, (size_t)n, sa, salen);
  ep->stats.stateless_resets_sent++;
}

static void send_version_negotiation(wzp_endpoint *ep, const ngtcp2_version_cid *vc,
                                     const struct sockaddr *sa, socklen_t salen, uint64_t now) {
  if (!bucket_take(&ep->reply_budget, now)) return;
  uint8_t buf[256];
  uint32_t sv[2] = {NGTCP2_PROTO_VER_V1, 0x1a2a3a4au};
  uint8_t unused;
  rand_bytes(&unused, 1);
  ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(buf, sizeof(buf), unused, vc->scid,
                                                        vc->scidlen, vc->dcid, vc->dcidlen, sv, 2);
  if (n <= 0) return;
  tx_enqueue_raw(ep, buf, (size_t)n, sa, salen);
  ep->stats.version_negotiations_sent++;
}

static void send_retry(wzp_endpoint *ep, const ngtcp2_pkt_hd *hd, const struct sockaddr *sa,
                       socklen_t salen, size_t pktlen, uint64_t now) {
  if (!bucket_take(&ep->retry_budget, now)) return;
  ngtcp2_cid scid;
  scid.datalen = WZP_SCIDLEN;
  rand_bytes(scid.data, scid.datalen);
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN], buf[WZP_PKT_CAP];
  ngtcp2_ssize tokenlen = ngtcp2_crypto_generate_retry_token(
      token, ep->secret, sizeof(ep->secret), hd->version, (const ngtcp2_sockaddr *)sa,
      (ngtcp2_socklen)salen, &scid, &hd->dcid, now);
  if (tokenlen < 0) return;
  ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, sizeof(buf), hd->version, &hd->scid, &scid,
                                             &hd->dcid, token, (size_t)tokenlen);
  if (n <= 0 || (size_t)n > pktlen * 3) return;
  tx_enqueue_raw(ep, buf, (size_t)n, sa, salen);
  ep->stats.retries_sent++;
}

static void send_stateless_close(wzp_endpoint *ep, const ngtcp2_pkt_hd *hd, uint64_t code,
                                 const char *reason, const struct sockaddr *sa, socklen_t salen,
                                 uint64_t now) {
  if (!bucket_take(&ep->reply_budget, now)) return;
  uint8_t buf[WZP_PKT_CAP];
  ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(
      buf, sizeof(buf), hd->version, &hd->scid, &hd->dcid, code, (const uint8_t *)reason,
      strlen(reason));
  if (n <= 0) return;
  tx_enqueue_raw(ep, buf, (size_t)n, sa, salen);
}

/* ------------------------------------------------------------------ reading */
static void conn_read(wzp_conn *c, const struct sockaddr *sa, socklen_t salen, const uint8_t *pkt,
                      size_t pktlen, uint64_t now) {
  if (c->state == CONN_CLOSING) {
    /* Answer with the saved close, backing off exponentially (1st, 2nd, 4th, 8th ... packet). */
    c->close_rx_count++;
    if (c->closebuf && (c->close_rx_count & (c->close_rx_count - 1)) == 0)
      tx_enqueue_raw(c->ep, c->closebuf, c->closebuflen, sa, salen);
    return;
  }
  if (c->state == CONN_DRAINING) return;
  ngtcp2_path path = make_path(c->ep, sa, salen);
  ngtcp2_pkt_info pi = {0};
  c->pkts_recv++;
  int rv = ngtcp2_conn_read_pkt(c->conn, &path, &pi, pkt, pktlen, now);
  if (rv == 0) {
    mark_dirty(c);
    update_timer(c);
    return;
  }
  switch (rv) {
  case NGTCP2_ERR_DRAINING:
    enter_draining(c, now);
    return;
  case NGTCP2_ERR_DROP_CONN:
  case NGTCP2_ERR_RETRY:
    emit_closed(c, 0, NGTCP2_INTERNAL_ERROR, NULL, 0);
    conn_free(c);
    return;
  default:
    fail_conn(c, rv, now);
    return;
  }
}

static void accept_new(wzp_endpoint *ep, const struct sockaddr *sa, socklen_t salen,
                       const uint8_t *pkt, size_t pktlen, uint64_t now) {
  ngtcp2_pkt_hd hd;
  int rv = ngtcp2_accept(&hd, pkt, pktlen);
  if (rv == NGTCP2_ERR_RETRY) {
    if (ep->require_retry) send_retry(ep, &hd, sa, salen, pktlen, now);
    return;
  }
  if (rv != 0 || hd.type != NGTCP2_PKT_INITIAL) {
    ep->stats.packets_dropped++;
    return;
  }
  uint8_t akey[WZP_ADDR_KEY_MAX];
  size_t akeylen = addr_key(sa, akey);
  uintptr_t per_addr = akeylen ? (uintptr_t)map_get(&ep->addrs, akey, akeylen) : 0;
  uintptr_t silent_per_addr = akeylen ? (uintptr_t)map_get(&ep->silent_addrs, akey, akeylen) : 0;
  /* At a total limit, a connection that has not said anything yet is worth less than a newcomer:
     silent connections (from 32 addresses, say) must not keep everyone else out. The oldest one
     makes room, but only for a client that proved its address, or a spoofed flood would evict
     every honest handshake in progress. When every connection speaks, the limit refuses. */
  int full = ep->nconns >= ep->max_conns || ep->nsilent >= ep->max_silent;
  if ((full && !ep->silent_head) || per_addr >= ep->max_conns_per_addr ||
      silent_per_addr >= ep->max_silent_per_addr) {
    ep->stats.connections_refused++;
    send_stateless_close(ep, &hd, NGTCP2_CONNECTION_REFUSED, "server busy", sa, salen, now);
    return;
  }
  ngtcp2_cid ocid, *pocid = NULL;
  /* Under a flood of Initials (spoofed or not) every half-open connection costs ~130 KB until its
     handshake times out; past the threshold, only clients that prove their address get state. */
  int validate = ep->require_retry || full ||
                 (ep->retry_threshold && ep->handshaking >= ep->retry_threshold);
  if (validate || (hd.token.len && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY)) {
    if (hd.token.len == 0 || hd.token.base[0] != NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
      send_retry(ep, &hd, sa, salen, pktlen, now);
      return;
    }
    if (ngtcp2_crypto_verify_retry_token(&ocid, hd.token.base, hd.token.len, ep->secret,
                                         sizeof(ep->secret), hd.version,
                                         (const ngtcp2_sockaddr *)sa, (ngtcp2_socklen)salen,
                                         &hd.dcid, WZP_RETRY_TOKEN_TTL, now) != 0) {
      send_stateless_close(ep, &hd, NGTCP2_INVALID_TOKEN, "", sa, salen, now);
      return;
    }
    pocid = &ocid;
  }
  while ((ep->nconns >= ep->max_conns || ep->nsilent >= ep->max_silent) && ep->silent_head)
    close_silent(ep->silent_head, now);

  wzp_conn *c = conn_alloc(ep, 1, sa, salen);
  if (!c) return;
  ngtcp2_cid scid;
  scid.datalen = WZP_SCIDLEN;
  rand_bytes(scid.data, scid.datalen);
  ngtcp2_settings settings;
  fill_settings(ep, &settings, now);
  if (pocid) settings.token = hd.token;
  ngtcp2_transport_params params;
  fill_params(ep, &params);
  params.stateless_reset_token_present = 1;
  if (ngtcp2_crypto_generate_stateless_reset_token(params.stateless_reset_token, ep->secret,
                                                   sizeof(ep->secret), &scid) != 0) {
    conn_free(c);
    return;
  }
  if (pocid) {
    params.original_dcid = *pocid;
    params.retry_scid = hd.dcid;
    params.retry_scid_present = 1;
  } else {
    params.original_dcid = hd.dcid;
  }
  ngtcp2_callbacks cb;
  fill_callbacks(&cb, 1);
  ngtcp2_path path = make_path(ep, sa, salen);
  if (ngtcp2_conn_server_new(&c->conn, &hd.scid, &scid, &path, hd.version, &cb, &settings, &params,
                             NULL, c) != 0) {
    c->conn = NULL;
    conn_free(c);
    return;
  }
  if (session_new(c) != 0) {
    conn_free(c);
    return;
  }
  ngtcp2_conn_set_tls_native_handle(c->conn, c->session);
  if (add_key(c, scid.data, scid.datalen) != 0 || add_key(c, hd.dcid.data, hd.dcid.datalen) != 0) {
    conn_free(c);
    return;
  }
  if (akeylen) {
    memcpy(c->addr_key, akey, akeylen);
    c->addr_keylen = akeylen;
    map_put(&ep->addrs, akey, akeylen, (void *)(per_addr + 1));
  }
  silent_add(c, now);

  path = make_path(ep, sa, salen);
  ngtcp2_pkt_info pi = {0};
  c->pkts_recv++;
  rv = ngtcp2_conn_read_pkt(c->conn, &path, &pi, pkt, pktlen, now);
  if (rv == NGTCP2_ERR_CRYPTO) {
    /* e.g. no common ALPN: tell the client why with the TLS alert, then forget it. */
    c->closed_emitted = 1;
    fail_conn(c, rv, now);
    conn_free(c);
    return;
  }
  if (rv != 0 || !c->got_crypto) {
    /* Junk that passed the header checks (undecryptable, no ClientHello): keep no state. */
    c->closed_emitted = 1;
    conn_free(c);
    ep->stats.packets_dropped++;
    return;
  }
  mark_dirty(c);
  update_timer(c);
}

/* ------------------------------------------------------------------ API: endpoint */
int wzp_endpoint_new(const wzp_config *cfg, const uint8_t *local_sa, uint32_t local_salen,
                     wzp_endpoint **out, char *err, uint32_t errcap) {
#define FAIL(msg)                                                                                  \
  do {                                                                                             \
    if (err && errcap) snprintf(err, errcap, "%s", msg);                                           \
    wzp_endpoint_free(ep);                                                                         \
    return WZP_ERR_INVALID;                                                                        \
  } while (0)
  wzp_endpoint *ep = NULL;
  *out = NULL;
  if (!cfg || !cfg->alpn || !valid_sockaddr(local_sa, local_salen)) FAIL("invalid arguments");
  size_t alpnlen = strlen(cfg->alpn);
  if (alpnlen == 0 || alpnlen > 255) FAIL("ALPN must be 1 to 255 bytes");
  ep = calloc(1, sizeof(*ep));
  if (!ep) return WZP_ERR_INTERNAL;
  ep->is_server = cfg->is_server != 0;
  ep->alpn = strdup(cfg->alpn);
  ep->alpnlen = alpnlen;
  ep->server_name = cfg->server_name ? strdup(cfg->server_name) : NULL;
  ep->idle_timeout = cfg->idle_timeout_ns ? cfg->idle_timeout_ns : 30 * NGTCP2_SECONDS;
  ep->handshake_timeout = cfg->handshake_timeout_ns ? cfg->handshake_timeout_ns : 10 * NGTCP2_SECONDS;
  ep->keep_alive = cfg->keep_alive_ns;
  ep->max_dgram_frame = cfg->max_datagram_frame_size ? cfg->max_datagram_frame_size : 1203;
  ep->max_conns = cfg->max_connections ? cfg->max_connections : 10000;
  ep->max_conns_per_addr = cfg->max_connections_per_address ? cfg->max_connections_per_address : 256;
  ep->require_retry = cfg->require_retry;
  ep->retry_threshold = cfg->retry_threshold;
  ep->peer_uni_streams = cfg->peer_uni_streams;
  ep->stream_window = cfg->stream_window ? cfg->stream_window : 256 * 1024;
  ep->max_send_buffer = cfg->max_stream_send_buffer ? cfg->max_stream_send_buffer : 1024 * 1024;
  memcpy(&ep->local, local_sa, local_salen);
  ep->locallen = local_salen;
  /* A secret kept across restarts lets a restarted server reset its old connections at once. */
  if (cfg->static_secret)
    memcpy(ep->secret, cfg->static_secret, sizeof(ep->secret));
  else
    rand_bytes(ep->secret, sizeof(ep->secret));
  ep->silent_timeout = cfg->silent_timeout_ns ? cfg->silent_timeout_ns : WZP_DEFAULT_SILENT_TIMEOUT;
  ep->max_silent = cfg->max_silent_connections ? cfg->max_silent_connections : WZP_DEFAULT_MAX_SILENT;
  ep->max_silent_per_addr = cfg->max_silent_connections_per_address
                                ? cfg->max_silent_connections_per_address
                                : WZP_DEFAULT_MAX_SILENT_PER_ADDR;
  bucket_init(&ep->reset_budget, WZP_RESET_BURST, WZP_RESET_PER_SEC);
  bucket_init(&ep->retry_budget, WZP_RETRY_BURST, WZP_RETRY_PER_SEC);
  bucket_init(&ep->reply_budget, WZP_REPLY_BURST, WZP_REPLY_PER_SEC);
  if (!ep->alpn || map_init(&ep->cids, 256) || map_init(&ep->ids, 256) || map_init(&ep->addrs, 64) ||
      map_init(&ep->silent_addrs, 64))
    FAIL("out of memory");
  ep->tx_slots = ep->is_server ? WZP_TX_SLOTS_SERVER : WZP_TX_SLOTS_CLIENT;
  ep->tx = calloc(ep->tx_slots, sizeof(tx_slot));
  if (!ep->tx) FAIL("out of memory");
  if (gnutls_certificate_allocate_credentials(&ep->cred) != 0) {
    ep->cred = NULL;
    FAIL("gnutls_certificate_allocate_credentials failed");
  }
  if (ep->is_server) {
    if (!cfg->cert_file || !cfg->key_file) FAIL("a server needs a certificate and a key");
    int rv = gnutls_certificate_set_x509_key_file(ep->cred, cfg->cert_file, cfg->key_file,
                                                  GNUTLS_X509_FMT_PEM);
    if (rv < 0) {
      if (err && errcap) snprintf(err, errcap, "loading certificate/key: %s", gnutls_strerror(rv));
      wzp_endpoint_free(ep);
      return WZP_ERR_INVALID;
    }
  } else if (cfg->ca_file) {
    if (gnutls_certificate_set_x509_trust_file(ep->cred, cfg->ca_file, GNUTLS_X509_FMT_PEM) <= 0)
      FAIL("no trust anchor loaded from ca_file");
    ep->verify = 1;
  }
  *out = ep;
  return 0;
#undef FAIL
}

void wzp_endpoint_free(wzp_endpoint *ep) {
  if (!ep) return;
  while (ep->conns) conn_free(ep->conns);
  for (event_node *n = ep->ev_head; n;) {
    event_node *next = n->next;
    free(n);
    n = next;
  }
  free(ep->heap);
  free(ep->cids.slots);
  free(ep->ids.slots);
  free(ep->addrs.slots);
  free(ep->silent_addrs.slots);
  free(ep->tx);
  if (ep->cred) gnutls_certificate_free_credentials(ep->cred);
  free(ep->alpn);
  free(ep->server_name);
  free(ep);
}

int wzp_endpoint_connect(wzp_endpoint *ep, const uint8_t *remote_sa, uint32_t remote_salen,
                         uint64_t now, uint64_t *conn_id) {
  if (!ep || ep->is_server || !valid_sockaddr(remote_sa, remote_salen)) return WZP_ERR_INVALID;
  const struct sockaddr *sa = (const struct sockaddr *)remote_sa;
  wzp_conn *c = conn_alloc(ep, 0, sa, remote_salen);
  if (!c) return WZP_ERR_INTERNAL;
  ngtcp2_cid dcid, scid;
  dcid.datalen = 18;
  rand_bytes(dcid.data, dcid.datalen);
  scid.datalen = WZP_SCIDLEN;
  rand_bytes(scid.data, scid.datalen);
  ngtcp2_settings settings;
  fill_settings(ep, &settings, now);
  ngtcp2_transport_params params;
  fill_params(ep, &params);
  ngtcp2_callbacks cb;
  fill_callbacks(&cb, 0);
  ngtcp2_path path = make_path(ep, sa, remote_salen);
  if (ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                             &params, NULL, c) != 0) {
    c->conn = NULL;
    conn_free(c);
    return WZP_ERR_INTERNAL;
  }
  if (session_new(c) != 0 || add_key(c, scid.data, scid.datalen) != 0) {
    conn_free(c);
    return WZP_ERR_INTERNAL;
  }
  ngtcp2_conn_set_tls_native_handle(c->conn, c->session);
  if (ep->keep_alive) ngtcp2_conn_set_keep_alive_timeout(c->conn, ep->keep_alive);
  *conn_id = c->id;
  mark_dirty(c);
  update_timer(c);
  return 0;
}

void wzp_endpoint_recv(wzp_endpoint *ep, const uint8_t *remote_sa, uint32_t remote_salen,
                       const uint8_t *pkt, uint32_t pktlen, uint64_t now) {
  if (!ep || !pkt || pktlen == 0 || !valid_sockaddr(remote_sa, remote_salen)) return;
  ep->stats.packets_received++;
  const struct sockaddr *sa = (const struct sockaddr *)remote_sa;
  ngtcp2_version_cid vc;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, pktlen, WZP_SCIDLEN);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    /* Only for packets as large as a client Initial, so VN never amplifies. */
    if (ep->is_server && pktlen >= 1200) send_version_negotiation(ep, &vc, sa, remote_salen, now);
    return;
  }
  if (rv != 0 || vc.dcidlen > NGTCP2_MAX_CIDLEN) {
    ep->stats.packets_dropped++;
    return;
  }
  wzp_conn *c = map_get(&ep->cids, vc.dcid, vc.dcidlen);
  if (!c && !ep->is_server && ep->nconns == 1) {
    /* A stateless reset carries no CID of ours; the single client connection checks the
       token itself. */
    c = ep->conns;
  }
  if (c) {
    conn_read(c, sa, remote_salen, pkt, pktlen, now);
    return;
  }
  if (!ep->is_server) {
    ep->stats.packets_dropped++;
    return;
  }
  if (pkt[0] & 0x80) {
    accept_new(ep, sa, remote_salen, pkt, pktlen, now);
  } else {
    ep->stats.packets_dropped++;
    send_stateless_reset(ep, vc.dcid, vc.dcidlen, pktlen, sa, remote_salen, now);
  }
}

void wzp_endpoint_handle_timers(wzp_endpoint *ep, uint64_t now) {
  if (!ep) return;
  while (ep->heaplen && ep->heap[0]->expiry <= now) {
    wzp_conn *c = ep->heap[0];
    if (c->state != CONN_OPEN) {
      conn_free(c);
      continue;
    }
    if (c->silent && c->silent_deadline <= now) {
      close_silent(c, now);
      continue;
    }
    int rv = ngtcp2_conn_handle_expiry(c->conn, now);
    if (rv == NGTCP2_ERR_IDLE_CLOSE) {
      emit_closed(c, WZP_CLOSE_IDLE, 0, NULL, 0);
      conn_free(c);
      continue;
    }
    if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
      emit_closed(c, WZP_CLOSE_HANDSHAKE_TIMEOUT, 0, NULL, 0);
      conn_free(c);
      continue;
    }
    if (rv != 0) {
      fail_conn(c, rv, now);
      continue;
    }
    flush_conn(c, now);
    if (c->expiry <= now) {
      /* ngtcp2 did not move its timer (e.g. the tx ring is full); retry on the next round
         instead of spinning here. */
      c->expiry = now + NGTCP2_MILLISECONDS;
      heap_down(ep, c->heap_idx);
    }
  }
}

uint64_t wzp_endpoint_next_expiry(wzp_endpoint *ep) {
  if (!ep || ep->heaplen == 0) return UINT64_MAX;
  return ep->heap[0]->expiry;
}

int32_t wzp_endpoint_pop_packet(wzp_endpoint *ep, uint8_t *buf, uint32_t cap, uint8_t *sa,
                                uint32_t sacap, uint32_t *salen, uint64_t now) {
  if (!ep) return 0;
  while (ep->tx_count == 0 && ep->dirty_head) flush_conn(ep->dirty_head, now);
  if (ep->tx_count == 0) return 0;
  tx_slot *slot = &ep->tx[ep->tx_head];
  ep->tx_head = (ep->tx_head + 1) % ep->tx_slots;
  ep->tx_count--;
  if (slot->len > cap || slot->salen > sacap) return WZP_ERR_TOO_LARGE;
  memcpy(buf, slot->data, slot->len);
  memcpy(sa, &slot->sa, slot->salen);
  *salen = slot->salen;
  ep->stats.packets_sent++;
  return (int32_t)slot->len;
}

int wzp_endpoint_send_ready(wzp_endpoint *ep, int fd, uint64_t now) {
  if (!ep) return 0;
  int total = 0;
  for (;;) {
    while (ep->dirty_head && ep->tx_count < ep->tx_slots) flush_conn(ep->dirty_head, now);
    if (ep->tx_count == 0) {
      ep->tx_blocked = 0;
      return total;
    }
    struct mmsghdr msgs[WZP_TX_SLOTS_SERVER];
    struct iovec iov[WZP_TX_SLOTS_SERVER];
    unsigned cnt = 0;
    for (; cnt < ep->tx_count && cnt < WZP_TX_SLOTS_SERVER; cnt++) {
      tx_slot *slot = &ep->tx[(ep->tx_head + cnt) % ep->tx_slots];
      iov[cnt].iov_base = slot->data;
      iov[cnt].iov_len = slot->len;
      memset(&msgs[cnt], 0, sizeof(msgs[cnt]));
      msgs[cnt].msg_hdr.msg_name = &slot->sa;
      msgs[cnt].msg_hdr.msg_namelen = slot->salen;
      msgs[cnt].msg_hdr.msg_iov = &iov[cnt];
      msgs[cnt].msg_hdr.msg_iovlen = 1;
    }
    int n;
    if (ep->fail_sends) {
      ep->fail_sends--;
      errno = EAGAIN;
      n = -1;
    } else {
      n = sendmmsg(fd, msgs, cnt, MSG_DONTWAIT);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      /* A full socket buffer: dropping a packet per attempt, as this once did, lost whole bursts
         while spinning under the caller's lock. Keep them and let the caller wait for the socket
         to become writable. */
      ep->tx_blocked = 1;
      ep->stats.send_blocked++;
      return WZP_ERR_WOULD_BLOCK;
    }
    if (n <= 0) {
      /* An error that belongs to the first packet (e.g. a pending ICMP error, an address the
         kernel refuses): to QUIC this is packet loss; dropping it guarantees progress. */
      n = 1;
      ep->stats.packets_dropped++;
    } else {
      ep->tx_blocked = 0;
      ep->stats.packets_sent += (uint64_t)n;
      total += n;
    }
    ep->tx_head = (ep->tx_head + (size_t)n) % ep->tx_slots;
    ep->tx_count -= (size_t)n;
  }
}

int wzp_endpoint_poll_event(wzp_endpoint *ep, wzp_event *ev, uint8_t *buf, uint32_t cap) {
  if (!ep || !ep->ev_head) return 0;
  event_node *n = ep->ev_head;
  if (n->ev.data_len > cap) {
    /* Stream data released from ngtcp2's reorder buffer can exceed a packet: never truncate,
       tell the caller the size and keep the event for a retry with a larger buffer. */
    *ev = n->ev;
    return WZP_ERR_TOO_LARGE;
  }
  ep->ev_head = n->next;
  if (!ep->ev_head) ep->ev_tail = NULL;
  ep->ev_count--;
  *ev = n->ev;
  if (n->ev.data_len) memcpy(buf, n->data, n->ev.data_len);
  free(n);
  return 1;
}

void wzp_endpoint_get_stats(wzp_endpoint *ep, wzp_endpoint_stats *stats) {
  if (!ep || !stats) return;
  *stats = ep->stats;
  stats->connections = ep->nconns;
  stats->handshakes_in_progress = ep->handshaking;
}

/* ------------------------------------------------------------------ API: connection */
static wzp_conn *find(wzp_endpoint *ep, uint64_t id) {
  return ep ? map_get(&ep->ids, (const uint8_t *)&id, sizeof(id)) : NULL;
}

int wzp_conn_send_datagram(wzp_endpoint *ep, uint64_t conn_id, const uint8_t *data, uint32_t len,
                           uint64_t now) {
  uint32_t sent = 0;
  int rv = wzp_conn_send_datagrams(ep, conn_id, data, &len, 1, &sent, now);
  if (rv == 0) return WZP_ERR_TX_FULL; /* nothing written: the caller sends what is ready, retries */
  return rv < 0 ? rv : (int)sent;
}

int wzp_conn_send_datagrams(wzp_endpoint *ep, uint64_t conn_id, const uint8_t *data,
                            const uint32_t *lens, uint32_t count, uint32_t *sent, uint64_t now) {
  wzp_conn *c = find(ep, conn_id);
  *sent = 0;
  if (!c) return WZP_ERR_NO_CONN;
  if (c->state != CONN_OPEN || !c->connected) return WZP_ERR_STATE;
  uint32_t i = 0, accepted_total = 0;
  size_t off = 0;
  /* ngtcp2 0.12 asserts (Debian builds it with assertions: the process aborts) on a DATAGRAM frame
     with no payload, which RFC 9221 allows. We have no use for one: drop it and count it. Found by
     fuzz/fuzz_packet_input.c. */
#define SKIP_EMPTY()                                                                                 while (i < count && lens[i] == 0) {                                                                  c->dgram_dropped++;                                                                                i++;                                                                                             }
  SKIP_EMPTY();
  while (i < count) {
    size_t cap = ngtcp2_conn_get_max_tx_udp_payload_size(c->conn);
    if (cap > WZP_PKT_CAP) cap = WZP_PKT_CAP;
    if (ngtcp2_conn_get_cwnd_left(c->conn) <= cap) {
      /* ngtcp2 0.12 marks DATAGRAM packets ack-eliciting but not PTO-eliciting. If datagrams alone
         filled the congestion window and were lost together with their ACKs, no loss timer would be
         armed and the connection could send nothing more, control data included, until it idled
         out. So datagrams never take the window's last packet: a control-stream write always fits,
         arms the timer, and its probes let loss detection reclaim the window. */
      c->dgram_dropped += count - i;
      i = count;
      break;
    }
    tx_slot *slot = tx_reserve(ep);
    if (!slot) {
      if (ep->tx_blocked) {
        /* The socket is full: the queue drains only when it becomes writable, so a retry after
           send_ready cannot help. Media is dropped, as with a full congestion window. */
        c->dgram_dropped += count - i;
        i = count;
      }
      break;
    }
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    ngtcp2_ssize n;
    int progressed = 0;
    /* Coalesce as many datagrams as fit into one packet (FLAG_MORE), then finish it. */
    for (;;) {
      int accepted = 0;
      ngtcp2_vec v = {(uint8_t *)data + off, lens[i]};
      uint32_t flags = (i + 1 < count) ? NGTCP2_WRITE_DATAGRAM_FLAG_MORE : 0;
      n = ngtcp2_conn_writev_datagram(c->conn, &ps.path, &pi, slot->data, cap, &accepted, flags,
                                      0, &v, 1, now);
      if (accepted) {
        c->dgram_sent++;
        accepted_total++;
        off += lens[i];
        i++;
        progressed = 1;
        SKIP_EMPTY();
      }
      if (n == NGTCP2_ERR_WRITE_MORE) {
        if (i == count) {
          n = ngtcp2_conn_write_pkt(c->conn, &ps.path, &pi, slot->data, cap, now);
          break;
        }
        continue;
      }
      break;
    }
    if (n == NGTCP2_ERR_INVALID_ARGUMENT && !progressed) {
      /* Larger than the peer's max_datagram_frame_size: drop this one, keep going. */
      c->dgram_dropped++;
      off += lens[i];
      i++;
      SKIP_EMPTY();
      continue;
    }
    if (n < 0) {
      fail_conn(c, (int)n, now);
      return WZP_ERR_STATE;
    }
    if (n == 0) {
      /* Congestion window (or amplification limit) full: drop, never queue. */
      c->dgram_dropped += count - i;
      i = count;
      break;
    }
    tx_commit(ep, slot, (size_t)n, &ps.path.remote);
    c->pkts_sent++;
  }
#undef SKIP_EMPTY
  *sent = accepted_total;
  update_timer(c);
  return (int)i;
}

int64_t wzp_conn_stream_write(wzp_endpoint *ep, uint64_t conn_id, const uint8_t *data,
                              uint32_t len, int fin, uint64_t now) {
  (void)now;
  wzp_conn *c = find(ep, conn_id);
  if (!c) return WZP_ERR_NO_CONN;
  if (c->state != CONN_OPEN || !c->connected || c->fin_requested) return WZP_ERR_STATE;
  if (c->sid < 0) {
    if (c->is_server) return WZP_ERR_STATE; /* the client opens the control stream */
    int64_t sid;
    if (ngtcp2_conn_open_bidi_stream(c->conn, &sid, NULL) != 0) return WZP_ERR_STATE;
    c->sid = sid;
  }
  uint64_t buffered = c->sappend - c->sacked;
  uint64_t room = buffered >= ep->max_send_buffer ? 0 : ep->max_send_buffer - buffered;
  uint32_t take = len < room ? len : (uint32_t)room;
  uint32_t done = 0;
  while (done < take) {
    if (!c->stail || c->stail->len == WZP_CHUNK) {
      chunk *k = malloc(sizeof(chunk));
      if (!k) break;
      k->next = NULL;
      k->len = 0;
      if (c->stail)
        c->stail->next = k;
      else {
        c->shead = k;
        c->sbase = c->sappend;
      }
      c->stail = k;
    }
    size_t n = WZP_CHUNK - c->stail->len;
    if (n > take - done) n = take - done;
    memcpy(c->stail->data + c->stail->len, data + done, n);
    c->stail->len += n;
    c->sappend += n;
    done += (uint32_t)n;
  }
  if (done < len)
    c->write_blocked = 1;
  else if (fin)
    c->fin_requested = 1;
  mark_dirty(c);
  return done;
}

int wzp_conn_stream_consumed(wzp_endpoint *ep, uint64_t conn_id, uint64_t n) {
  wzp_conn *c = find(ep, conn_id);
  if (!c) return WZP_ERR_NO_CONN;
  if (c->state != CONN_OPEN || c->sid < 0) return WZP_ERR_STATE;
  ngtcp2_conn_extend_max_stream_offset(c->conn, c->sid, n);
  ngtcp2_conn_extend_max_offset(c->conn, n);
  mark_dirty(c);
  return 0;
}

int wzp_conn_close(wzp_endpoint *ep, uint64_t conn_id, uint64_t app_error_code,
                   const uint8_t *reason, uint32_t reasonlen, uint64_t now) {
  wzp_conn *c = find(ep, conn_id);
  if (!c) return WZP_ERR_NO_CONN;
  if (c->state != CONN_OPEN) return 0;
  ngtcp2_connection_close_error ccerr;
  ngtcp2_connection_close_error_default(&ccerr);
  if (reasonlen > 512) reasonlen = 512;
  ngtcp2_connection_close_error_set_application_error(&ccerr, app_error_code, reason, reasonlen);
  if (!c->connected) {
    /* Before the handshake an application close is sent as a transport APPLICATION_ERROR. */
    ngtcp2_connection_close_error_set_transport_error(&ccerr, NGTCP2_APPLICATION_ERROR, reason,
                                                      reasonlen);
  }
  close_local(c, &ccerr, now);
  return 0;
}

int wzp_conn_get_stats(wzp_endpoint *ep, uint64_t conn_id, wzp_conn_stats *s) {
  wzp_conn *c = find(ep, conn_id);
  if (!c) return WZP_ERR_NO_CONN;
  ngtcp2_conn_stat st;
  ngtcp2_conn_get_conn_stat(c->conn, &st);
  s->smoothed_rtt_ns = st.smoothed_rtt;
  s->min_rtt_ns = st.min_rtt;
  s->latest_rtt_ns = st.latest_rtt;
  s->cwnd = st.cwnd;
  s->bytes_in_flight = st.bytes_in_flight;
  s->datagrams_sent = c->dgram_sent;
  s->datagrams_received = c->dgram_recv;
  s->datagrams_dropped = c->dgram_dropped;
  s->datagrams_lost = c->dgram_lost;
  s->packets_sent = c->pkts_sent;
  s->packets_received = c->pkts_recv;
  s->stream_bytes_unacked = c->sappend - c->sacked;
  return 0;
}

int wzp_conn_get_remote(wzp_endpoint *ep, uint64_t conn_id, uint8_t *sa, uint32_t sacap,
                        uint32_t *salen) {
  wzp_conn *c = find(ep, conn_id);
  if (!c) return WZP_ERR_NO_CONN;
  const ngtcp2_path *p = ngtcp2_conn_get_path(c->conn);
  if (p->remote.addrlen > sacap) return WZP_ERR_TOO_LARGE;
  memcpy(sa, p->remote.addr, p->remote.addrlen);
  *salen = (uint32_t)p->remote.addrlen;
  return 0;
}

uint32_t wzp_conn_max_datagram_payload(wzp_endpoint *ep, uint64_t conn_id) {
  wzp_conn *c = find(ep, conn_id);
  if (!c || !c->connected) return 0;
  const ngtcp2_transport_params *rp = ngtcp2_conn_get_remote_transport_params(c->conn);
  if (!rp || rp->max_datagram_frame_size < 4) return 0;
  /* frame = type (1) + length varint (2 for sizes < 16384) + payload */
  return (uint32_t)(rp->max_datagram_frame_size - 3);
}

uint32_t wzp_address_bucket(const uint8_t *sa, uint32_t salen, uint8_t *key, uint32_t cap) {
  if (!key || cap < WZP_ADDR_KEY_MAX || !valid_sockaddr(sa, salen)) return 0;
  return (uint32_t)addr_key((const struct sockaddr *)sa, key);
}

void wzp_test_fail_sends(wzp_endpoint *ep, uint32_t count) {
  if (ep) ep->fail_sends = count;
}
