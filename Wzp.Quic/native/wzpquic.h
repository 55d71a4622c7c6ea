/*
 * wzpquic: a sans-IO QUIC endpoint over ngtcp2 0.12 + GnuTLS.
 *
 * The caller owns the UDP socket and the clock. It feeds every received datagram to
 * wzp_endpoint_recv, pulls packets to send with wzp_endpoint_pop_packet until it returns 0,
 * drives timers with wzp_endpoint_handle_timers at wzp_endpoint_next_expiry, and drains
 * events with wzp_endpoint_poll_event. An endpoint is not thread-safe: the caller serialises
 * every call on one endpoint (the managed side holds one lock per endpoint).
 *
 * Connections are named by a 64-bit id that is never reused within an endpoint, so a stale id
 * after the connection was freed is answered with WZP_ERR_NO_CONN instead of touching freed
 * memory. Times are nanoseconds on any monotonic clock.
 */
#ifndef WZPQUIC_H
#define WZPQUIC_H

#include <stddef.h>
#include <stdint.h>

#define WZP_EXPORT __attribute__((visibility("default")))

#define WZP_ERR_NO_CONN (-1)
#define WZP_ERR_STATE (-2)
#define WZP_ERR_TOO_LARGE (-3)
#define WZP_ERR_INVALID (-4)
#define WZP_ERR_INTERNAL (-5)
#define WZP_ERR_TX_FULL (-6)
#define WZP_ERR_WOULD_BLOCK (-7)

enum {
  WZP_EV_CONNECTED = 1,      /* data: negotiated ALPN */
  WZP_EV_DATAGRAM = 2,       /* data: payload */
  WZP_EV_STREAM_DATA = 3,    /* data: next in-order bytes of the control stream */
  WZP_EV_STREAM_FIN = 4,     /* flags: 1 when the peer reset the stream; code: its error code */
  WZP_EV_CLOSED = 5,         /* flags: WZP_CLOSE_*; code: error code; data: reason */
  WZP_EV_STREAM_WRITABLE = 6 /* send buffer has room again after a short write */
};

enum {
  WZP_CLOSE_REMOTE = 1,            /* the peer closed (CONNECTION_CLOSE received) */
  WZP_CLOSE_APPLICATION = 2,       /* code is an application error code */
  WZP_CLOSE_IDLE = 4,              /* idle timeout, nothing sent */
  WZP_CLOSE_HANDSHAKE_TIMEOUT = 8, /* handshake did not complete in time */
  WZP_CLOSE_STATELESS_RESET = 16   /* the peer forgot the connection */
};

typedef struct wzp_endpoint wzp_endpoint;

/* Every field is 8 bytes wide so that the managed mirror has no padding surprises. */
typedef struct wzp_config {
  uint64_t is_server;
  const char *alpn;        /* ALPN offered (client) or required (server), e.g. "wzp/1" */
  const char *cert_file;   /* server: PEM certificate chain */
  const char *key_file;    /* server: PEM private key */
  const char *ca_file;     /* client: PEM trust anchors; NULL: the certificate is not checked */
  const char *server_name; /* client: SNI and, with ca_file, the name verified */
  uint64_t idle_timeout_ns;
  uint64_t handshake_timeout_ns;
  uint64_t keep_alive_ns; /* client: PING after this much silence; 0: off */
  uint64_t max_datagram_frame_size;
  uint64_t max_connections;
  uint64_t max_connections_per_address;
  uint64_t require_retry; /* server: address validation with a Retry round trip */
  uint64_t retry_threshold; /* server: Retry anyway while this many handshakes are in progress; 0: off */
  uint64_t stream_window; /* receive window of the control stream */
  uint64_t max_stream_send_buffer; /* unacknowledged control-stream bytes kept at most */
  uint64_t peer_uni_streams; /* tests only: HTTP/3 peers need 3 to complete a handshake */
  const uint8_t *static_secret; /* 32 bytes keying stateless resets and Retry tokens; NULL: random */
  /* Server: a connection is "silent" until the client sends application data (control-stream
     bytes or a datagram); the handshake counts as silence. Silent connections are closed after
     silent_timeout_ns (0: 5 s); at most max_silent_connections (0: 512) and, per address (IPv6:
     per /64), max_silent_connections_per_address (0: 128) exist at once. At the total limits
     (this one or max_connections) the oldest silent connection makes room for an
     address-validated newcomer. */
  uint64_t silent_timeout_ns;
  uint64_t max_silent_connections;
  uint64_t max_silent_connections_per_address;
} wzp_config;

typedef struct wzp_event {
  uint64_t conn_id;
  uint32_t type;
  uint32_t flags;
  uint64_t code;
  int64_t stream_id;
  uint32_t data_len;
  uint32_t reserved;
} wzp_event;

typedef struct wzp_conn_stats {
  uint64_t smoothed_rtt_ns;
  uint64_t min_rtt_ns;
  uint64_t latest_rtt_ns;
  uint64_t cwnd;
  uint64_t bytes_in_flight;
  uint64_t datagrams_sent;
  uint64_t datagrams_received;
  uint64_t datagrams_dropped; /* did not fit the congestion window or the send queue */
  uint64_t datagrams_lost;    /* sent, then declared lost by loss detection */
  uint64_t packets_sent;
  uint64_t packets_received;
  uint64_t stream_bytes_unacked;
} wzp_conn_stats;

typedef struct wzp_endpoint_stats {
  uint64_t connections;
  uint64_t packets_received;
  uint64_t packets_sent;
  uint64_t packets_dropped; /* unroutable or malformed */
  uint64_t connections_refused;
  uint64_t stateless_resets_sent;
  uint64_t retries_sent;
  uint64_t handshakes_in_progress;
  uint64_t version_negotiations_sent;
  uint64_t events_dropped;
  uint64_t silent_closed; /* closed for silence, at the deadline or to make room */
  uint64_t send_blocked;  /* send_ready calls that stopped at a full socket buffer */
} wzp_endpoint_stats;

WZP_EXPORT int wzp_endpoint_new(const wzp_config *config, const uint8_t *local_sa,
                                uint32_t local_salen, wzp_endpoint **out, char *err,
                                uint32_t errcap);
WZP_EXPORT void wzp_endpoint_free(wzp_endpoint *ep);
WZP_EXPORT int wzp_endpoint_connect(wzp_endpoint *ep, const uint8_t *remote_sa,
                                    uint32_t remote_salen, uint64_t now, uint64_t *conn_id);
WZP_EXPORT void wzp_endpoint_recv(wzp_endpoint *ep, const uint8_t *remote_sa,
                                  uint32_t remote_salen, const uint8_t *pkt, uint32_t pktlen,
                                  uint64_t now);
WZP_EXPORT void wzp_endpoint_handle_timers(wzp_endpoint *ep, uint64_t now);
WZP_EXPORT uint64_t wzp_endpoint_next_expiry(wzp_endpoint *ep);
WZP_EXPORT int32_t wzp_endpoint_pop_packet(wzp_endpoint *ep, uint8_t *buf, uint32_t cap,
                                           uint8_t *sa, uint32_t sacap, uint32_t *salen,
                                           uint64_t now);
/* Returns 1 with the next event, 0 when there is none, or WZP_ERR_TOO_LARGE with ev->data_len
   set (and the event kept) when buf is smaller than its data. */
/* Sends every ready packet on the caller's UDP socket fd with sendmmsg (one system call per up to
   64 packets), never blocking. The descriptor stays the caller's. Returns the packets sent, or
   WZP_ERR_WOULD_BLOCK when the socket buffer is full: the unsent packets stay queued (none is
   dropped) and the caller calls again once the socket is writable. Until then datagrams that find
   the queue full are dropped and counted, and other frames wait inside ngtcp2. */
WZP_EXPORT int wzp_endpoint_send_ready(wzp_endpoint *ep, int fd, uint64_t now);
WZP_EXPORT int wzp_endpoint_poll_event(wzp_endpoint *ep, wzp_event *ev, uint8_t *buf,
                                       uint32_t cap);
WZP_EXPORT void wzp_endpoint_get_stats(wzp_endpoint *ep, wzp_endpoint_stats *stats);

/* Returns 1 when the datagram went into a packet, 0 when it was dropped (congestion window full),
   WZP_ERR_TX_FULL when the ready-to-send packets fill the queue (send them, then retry). */
WZP_EXPORT int wzp_conn_send_datagram(wzp_endpoint *ep, uint64_t conn_id, const uint8_t *data,
                                      uint32_t len, uint64_t now);
/* Sends datagrams packed back to back in data, coalescing several per packet. Returns how many
   were processed (sent or dropped) before the tx ring filled up; *sent counts those sent. */
WZP_EXPORT int wzp_conn_send_datagrams(wzp_endpoint *ep, uint64_t conn_id, const uint8_t *data,
                                       const uint32_t *lens, uint32_t count, uint32_t *sent,
                                       uint64_t now);
WZP_EXPORT int64_t wzp_conn_stream_write(wzp_endpoint *ep, uint64_t conn_id, const uint8_t *data,
                                         uint32_t len, int fin, uint64_t now);
WZP_EXPORT int wzp_conn_stream_consumed(wzp_endpoint *ep, uint64_t conn_id, uint64_t n);
WZP_EXPORT int wzp_conn_close(wzp_endpoint *ep, uint64_t conn_id, uint64_t app_error_code,
                              const uint8_t *reason, uint32_t reasonlen, uint64_t now);
WZP_EXPORT int wzp_conn_get_stats(wzp_endpoint *ep, uint64_t conn_id, wzp_conn_stats *stats);
WZP_EXPORT int wzp_conn_get_remote(wzp_endpoint *ep, uint64_t conn_id, uint8_t *sa,
                                   uint32_t sacap, uint32_t *salen);
WZP_EXPORT uint32_t wzp_conn_max_datagram_payload(wzp_endpoint *ep, uint64_t conn_id);

/* The key per-address limits count by: writes it to key (at least 9 bytes) and returns its length,
   0 for an unsupported address. Exposed so that tests (and the managed mirror of the rule) can
   check that all of an IPv6 /64 shares one key. */
/* Tests only: the next `count` calls of send_ready meet a full socket buffer (EAGAIN) before sending
   anything. Loopback UDP never fills up, so the managed wait for a writable socket needs this. */
WZP_EXPORT void wzp_test_fail_sends(wzp_endpoint *ep, uint32_t count);

WZP_EXPORT uint32_t wzp_address_bucket(const uint8_t *sa, uint32_t salen, uint8_t *key,
                                       uint32_t cap);

#endif
