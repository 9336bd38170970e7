/* vblip serve's connection layer, between the listening socket and libmicrohttpd.
 *
 * libmicrohttpd restarts a connection's idle timeout on every byte and gives each
 * connection a thread from its accept on, so a few hundred clients trickling their
 * requests (slowloris) could hold every connection of the server. The guard accepts
 * the connections itself and keeps them in one epoll thread until their request head
 * has arrived whole and passed vs_http_head_parse; only then does the library get them
 * (MHD_add_connection). So:
 *  - a request head must arrive within header_timeout_ms of the accept, and its body
 *    within body_timeout_ms of the head, however slowly the bytes trickle (408);
 *  - one client address (an IPv6 /64) holds at most max_per_client connections and all
 *    clients together at most max_connections; at a limit, the connection that has
 *    waited longest for its request makes room (so a quick request such as
 *    /api/health always gets in), and only when every connection is busy answering is
 *    the new one refused (429 for one client, 503 for all);
 *  - a head the library would refuse with its own HTML page (bad version, oversized
 *    head or target, bad Content-Length) is answered in the server's JSON error shape.
 * Every response closes its connection, so every request passes through the guard. */
#ifndef VBLIP_SERVER_HTTP_GUARD_H
#define VBLIP_SERVER_HTTP_GUARD_H

#include <microhttpd.h>
#include <stddef.h>

typedef struct {
  int max_connections;   /* all clients together */
  int max_per_client;    /* one address (an IPv6 /64) */
  int header_timeout_ms; /* accept -> complete request head */
  int body_timeout_ms;   /* complete head -> complete body */
  size_t max_head;       /* request line + header fields, bytes */
  size_t max_target;     /* the request target, bytes */
  int verbose;           /* log refused and timed-out requests on stderr */
} vs_guard_limits;

typedef struct vs_guard vs_guard;

vs_guard *vs_guard_new(const vs_guard_limits *l);
/* MHD_OPTION_NOTIFY_CONNECTION's callback; its closure is the guard. */
void vs_guard_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                            enum MHD_ConnectionNotificationCode code);
/* Starts the guard's thread on a listening socket (non-blocking); handed connections
 * go to d. 0 or -1 (vb_error). */
int vs_guard_start(vs_guard *g, int listen_fd, struct MHD_Daemon *d);
/* Stops accepting and closes the connections still waiting for their heads. Call before
 * MHD_stop_daemon, and vs_guard_free after it. */
void vs_guard_stop(vs_guard *g);
void vs_guard_free(vs_guard *g);

/* The request on c has arrived whole: the body deadline no longer applies. */
void vs_guard_request_received(vs_guard *g, struct MHD_Connection *c);
/* The request on c is answered (the library is about to close c): it no longer counts
 * against the limits, although the library has not closed it yet. */
void vs_guard_request_done(vs_guard *g, struct MHD_Connection *c);
/* Answers c with an error written on its socket and closes it for reading, from the
 * connection's own thread while the library is still reading the body (where the
 * library cannot queue a response); the handler then returns MHD_NO. */
void vs_guard_reject(vs_guard *g, struct MHD_Connection *c, const char *url, unsigned status,
                     const char *msg);

typedef struct {
  int open;    /* connections counted against the limits */
  int waiting; /* of which still receiving their request */
} vs_guard_counts;
void vs_guard_get_counts(vs_guard *g, vs_guard_counts *out);

#endif
