#define _GNU_SOURCE
#include "server/http_guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "runtime/common.h"
#include "runtime/escape.h"
#include "server/http_error.h"
#include "server/http_head.h"

/* C_HEAD and C_LINGER connections are the guard's; the others are the library's. */
enum {
  C_HEAD,   /* receiving the request head (epoll) */
  C_LINGER, /* answered with an error: draining what the client still sends */
  C_HANDED, /* given to the library, which has not started it yet */
  C_BODY,   /* the library reads the body */
  C_DONE,   /* the request has arrived: the handler answers it */
  C_CLOSING /* cut off (deadline or eviction): the library closes it */
};

#define HANDOFF_MS 5000  /* a handed connection the library never starts is forgotten */
#define LINGER_MS 1000   /* how long an answered connection is drained before closing */
#define MAX_LINGERING 64 /* beyond these, answered connections close at once */

typedef struct conn {
  int fd, state;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  unsigned char client[16]; /* the address that limits count: IPv4, or an IPv6 /64 */
  double deadline;
  struct conn *prev, *next; /* oldest first */
} conn;

struct vs_guard {
  vs_guard_limits lim;
  vs_http_limits head;
  pthread_mutex_t mu;
  conn *first, *last;
  int n_lingering;
  int listen_fd, ep, wake;
  struct MHD_Daemon *d;
  pthread_t thread;
  int started, stopping;
  double accept_paused_until; /* out of descriptors: the listening socket rests */
  char *buf;                  /* max_head + 1 bytes for peeking */
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void client_key(const struct sockaddr_storage *a, unsigned char key[16]) {
  memset(key, 0, 16);
  if (a->ss_family == AF_INET) {
    memcpy(key, &((const struct sockaddr_in *)a)->sin_addr, 4);
  } else if (a->ss_family == AF_INET6) {
    const struct in6_addr *x = &((const struct sockaddr_in6 *)a)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(x))
      memcpy(key, x->s6_addr + 12, 4);
    else
      memcpy(key + 4, x->s6_addr, 8); /* one /64 is one client */
  }
}

static int counted(const conn *c) {
  return c->state != C_LINGER && c->state != C_CLOSING;
}
static int waiting(const conn *c) {
  return c->state == C_HEAD || c->state == C_BODY;
}

/* ---- the list (locked) ---- */

static conn *conn_add(vs_guard *g, int fd, const struct sockaddr_storage *a, socklen_t len) {
  conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->fd = fd;
  c->addr = *a;
  c->addrlen = len;
  client_key(a, c->client);
  c->prev = g->last;
  if (g->last)
    g->last->next = c;
  else
    g->first = c;
  g->last = c;
  return c;
}

static void conn_unlink(vs_guard *g, conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    g->first = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    g->last = c->prev;
  if (c->state == C_LINGER) g->n_lingering--;
  free(c);
}

/* A connection of the guard's: out of epoll, closed, forgotten. */
static void conn_close(vs_guard *g, conn *c) {
  epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  conn_unlink(g, c);
}

/* ---- answers written on the socket ---- */

static void log_refusal(vs_guard *g, const conn *c, unsigned status, const char *msg) {
  if (!g->lim.verbose) return;
  char safe[512], peer[INET6_ADDRSTRLEN] = "?";
  vb_escape_controls(msg, safe, sizeof safe);
  if (c->addr.ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)&c->addr)->sin_addr, peer, sizeof peer);
  else if (c->addr.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&c->addr)->sin6_addr, peer, sizeof peer);
  fprintf(stderr, "vblip serve: %s: %u %s\n", peer, status, safe);
}

static void write_error(int fd, const char *url, size_t url_len, unsigned status, const char *msg) {
  size_t len = 0;
  char *r = vs_error_response(url, url_len, status, msg, &len);
  /* a fresh socket's send buffer holds these few hundred bytes at once */
  if (r && len) (void)!send(fd, r, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  free(r);
}

/* Reads and drops what a lingering connection sent (at most 256 KiB a call); closes it
 * at the end of its stream. c may be gone afterwards. */
static void drain(vs_guard *g, conn *c) {
  char sink[4096];
  for (int i = 0; i < 64; i++) {
    ssize_t n = recv(c->fd, sink, sizeof sink, 0);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    conn_close(g, c); /* end of stream or error */
    return;
  }
}

/* Answers one of the guard's connections and drains it for a moment before closing:
 * closing with unread bytes (the peeked head among them) would reset the connection
 * and could lose the answer. c may be gone afterwards. */
static void answer_and_linger(vs_guard *g, conn *c, const char *url, size_t url_len,
                              unsigned status, const char *msg) {
  log_refusal(g, c, status, msg);
  write_error(c->fd, url, url_len, status, msg);
  shutdown(c->fd, SHUT_WR);
  if (g->n_lingering >= MAX_LINGERING) {
    conn_close(g, c);
    return;
  }
  c->state = C_LINGER;
  c->deadline = now_ms() + LINGER_MS;
  g->n_lingering++;
  /* a refused newcomer is not watched yet (EEXIST for the others) */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = c->fd};
  epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev);
  drain(g, c);
}

/* Makes room: the connection that has waited longest for its request goes. */
static void evict(vs_guard *g, conn *c, const char *why) {
  if (c->state == C_HEAD) {
    answer_and_linger(g, c, NULL, 0, 503, why);
  } else { /* the library's: it notices the shutdown and closes */
    log_refusal(g, c, 503, why);
    write_error(c->fd, NULL, 0, 503, why);
    shutdown(c->fd, SHUT_RDWR);
    c->state = C_CLOSING;
  }
}

/* The oldest connection still receiving its request, of one client (key) or of all,
 * other than the newcomer. */
static conn *oldest_waiting(vs_guard *g, const conn *newcomer, const unsigned char *key) {
  for (conn *c = g->first; c; c = c->next)
    if (c != newcomer && waiting(c) && (!key || memcmp(c->client, key, 16) == 0)) return c;
  return NULL;
}

/* At a limit: the oldest connection still receiving its request (of the newcomer's client
 * when key is set) makes room; when there is none, the newcomer gets `status`. Returns 1
 * when the newcomer was refused. */
static int make_room(vs_guard *g, conn *c, const unsigned char *key, unsigned status,
                     const char *refusal) {
  conn *v = oldest_waiting(g, c, key);
  if (!v) {
    answer_and_linger(g, c, NULL, 0, status, refusal);
    return 1;
  }
  evict(g, v, "closed to make room: the request did not arrive quickly enough");
  return 0;
}

/* ---- accepting ---- */

static void admit(vs_guard *g, int fd, const struct sockaddr_storage *a, socklen_t len) {
  /* a record still holding this number is stale: the library closed that socket */
  for (conn *c = g->first, *next; c; c = next) {
    next = c->next;
    if (c->fd == fd && c->state == C_HANDED) conn_unlink(g, c);
  }
  conn *c = conn_add(g, fd, a, len);
  if (!c) {
    close(fd);
    return;
  }
  int mine = 0, all = 0;
  for (conn *k = g->first; k; k = k->next) {
    if (k == c || !counted(k)) continue;
    all++;
    if (memcmp(k->client, c->client, 16) == 0) mine++;
  }
  char msg[160];
  if (mine >= g->lim.max_per_client) {
    snprintf(msg, sizeof msg, "too many connections from your address (the limit is %d)",
             g->lim.max_per_client);
    if (make_room(g, c, c->client, 429, msg)) return;
  } else if (all >= g->lim.max_connections) {
    snprintf(msg, sizeof msg, "the server has %d connections open (its limit); retry later",
             g->lim.max_connections);
    if (make_room(g, c, NULL, 503, msg)) return;
  }
  c->state = C_HEAD;
  c->deadline = now_ms() + g->lim.header_timeout_ms;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = fd};
  if (epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &ev) != 0) conn_close(g, c);
}

static void accept_all(vs_guard *g) {
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    int fd = accept4(g->listen_fd, (struct sockaddr *)&a, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      admit(g, fd, &a, len);
      continue;
    }
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      /* the pending connection stays in the backlog: stop watching the listening socket
       * for a moment instead of waking up for it without end */
      struct epoll_event off = {.events = 0, .data.fd = g->listen_fd};
      epoll_ctl(g->ep, EPOLL_CTL_MOD, g->listen_fd, &off);
      g->accept_paused_until = now_ms() + 100;
    }
    return; /* EAGAIN: nothing more waits */
  }
}

/* ---- request heads ---- */

static void hand_over(vs_guard *g, conn *c) {
  epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
  c->state = C_HANDED;
  c->deadline = now_ms() + HANDOFF_MS;
  /* with the library's own thread this queues the connection; on failure it has
   * closed the socket */
  if (MHD_add_connection(g->d, c->fd, (const struct sockaddr *)&c->addr, c->addrlen) != MHD_YES)
    conn_unlink(g, c);
}

static void read_head(vs_guard *g, conn *c, unsigned events) {
  ssize_t n = recv(c->fd, g->buf, g->lim.max_head + 1, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) { /* the client went away */
    conn_close(g, c);
    return;
  }
  vs_http_head h;
  char msg[256];
  int st = vs_http_head_parse(g->buf, (size_t)n, &g->head, &h, msg, sizeof msg);
  if (st == VS_HEAD_OK) {
    hand_over(g, c);
  } else if (st != VS_HEAD_INCOMPLETE) {
    answer_and_linger(g, c, h.target, h.target_len, (unsigned)st, msg);
  } else if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    conn_close(g, c); /* the client stopped sending before its head was whole */
  }
}

/* ---- deadlines ---- */

static void check_deadlines(vs_guard *g) {
  double now = now_ms();
  char msg[160];
  for (conn *c = g->first, *next; c; c = next) {
    next = c->next;
    if (now < c->deadline) continue;
    switch (c->state) {
    case C_HEAD:
      snprintf(msg, sizeof msg, "the request head did not arrive within %g s",
               g->lim.header_timeout_ms / 1e3);
      answer_and_linger(g, c, NULL, 0, 408, msg);
      break;
    case C_LINGER:
      conn_close(g, c);
      break;
    case C_HANDED:
      conn_unlink(g, c);
      break; /* never started: the library closed it */
    case C_BODY:
      snprintf(msg, sizeof msg, "the request body did not arrive within %g s",
               g->lim.body_timeout_ms / 1e3);
      log_refusal(g, c, 408, msg);
      write_error(c->fd, NULL, 0, 408, msg);
      shutdown(c->fd, SHUT_RDWR);
      c->state = C_CLOSING;
      break;
    default:
      break;
    }
  }
}

static int next_wait_ms(vs_guard *g) {
  double now = now_ms(), soonest = now + 250;
  for (conn *c = g->first; c; c = c->next)
    if (c->state != C_DONE && c->state != C_CLOSING && c->deadline < soonest) soonest = c->deadline;
  return soonest <= now ? 0 : (int)(soonest - now) + 1;
}

static conn *find_own(vs_guard *g, int fd) {
  for (conn *c = g->first; c; c = c->next)
    if (c->fd == fd && (c->state == C_HEAD || c->state == C_LINGER)) return c;
  return NULL;
}

static void *guard_main(void *arg) {
  vs_guard *g = arg;
  struct epoll_event ev[64];
  pthread_mutex_lock(&g->mu);
  while (!g->stopping) {
    int timeout = next_wait_ms(g);
    pthread_mutex_unlock(&g->mu);
    int n = epoll_wait(g->ep, ev, 64, timeout);
    pthread_mutex_lock(&g->mu);
    if (g->stopping) break;
    for (int i = 0; i < n; i++) {
      int fd = ev[i].data.fd;
      if (fd == g->listen_fd) {
        accept_all(g);
        continue;
      }
      if (fd == g->wake) continue;
      /* looked up by descriptor: an earlier event of this round may have closed it */
      conn *c = find_own(g, fd);
      if (c && c->state == C_HEAD)
        read_head(g, c, ev[i].events);
      else if (c)
        drain(g, c);
    }
    check_deadlines(g);
    if (g->accept_paused_until && now_ms() >= g->accept_paused_until) {
      struct epoll_event on = {.events = EPOLLIN, .data.fd = g->listen_fd};
      epoll_ctl(g->ep, EPOLL_CTL_MOD, g->listen_fd, &on);
      g->accept_paused_until = 0;
    }
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

/* ---- the library's side ---- */

static int library_fd(struct MHD_Connection *mc) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
  return ci ? ci->connect_fd : -1;
}

void vs_guard_on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                            enum MHD_ConnectionNotificationCode code) {
  vs_guard *g = cls;
  pthread_mutex_lock(&g->mu);
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    int fd = library_fd(mc);
    *socket_context = NULL;
    for (conn *c = g->first; fd >= 0 && c; c = c->next)
      if (c->fd == fd && c->state == C_HANDED) {
        c->state = C_BODY;
        c->deadline = now_ms() + g->lim.body_timeout_ms;
        *socket_context = c;
        break;
      }
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
    /* before the library closes the socket: its number is not reused yet */
    conn_unlink(g, *socket_context);
    *socket_context = NULL;
  }
  pthread_mutex_unlock(&g->mu);
}

static conn *library_conn(struct MHD_Connection *mc) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

void vs_guard_request_received(vs_guard *g, struct MHD_Connection *mc) {
  pthread_mutex_lock(&g->mu);
  conn *c = library_conn(mc);
  if (c && c->state == C_BODY) c->state = C_DONE;
  pthread_mutex_unlock(&g->mu);
}

void vs_guard_request_done(vs_guard *g, struct MHD_Connection *mc) {
  pthread_mutex_lock(&g->mu);
  conn *c = library_conn(mc);
  if (c) c->state = C_CLOSING;
  pthread_mutex_unlock(&g->mu);
}

void vs_guard_reject(vs_guard *g, struct MHD_Connection *mc, const char *url, unsigned status,
                     const char *msg) {
  int fd = library_fd(mc);
  pthread_mutex_lock(&g->mu);
  conn *c = library_conn(mc);
  if (c) c->state = C_CLOSING;
  if (c) log_refusal(g, c, status, msg);
  pthread_mutex_unlock(&g->mu);
  if (fd < 0) return;
  write_error(fd, url, url ? strlen(url) : 0, status, msg);
  shutdown(fd, SHUT_WR);
  /* drain briefly, so that closing does not reset the connection before the client
   * has read the answer */
  char sink[16384];
  double until = now_ms() + LINGER_MS;
  for (double now = now_ms(); now < until; now = now_ms()) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)(until - now) + 1) <= 0) break;
    ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
  }
}

void vs_guard_get_counts(vs_guard *g, vs_guard_counts *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&g->mu);
  for (conn *c = g->first; c; c = c->next) {
    out->open += counted(c);
    out->waiting += waiting(c);
  }
  pthread_mutex_unlock(&g->mu);
}

/* ---- lifetime ---- */

vs_guard *vs_guard_new(const vs_guard_limits *l) {
  vs_guard *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->lim = *l;
  g->head.max_head = l->max_head;
  g->head.max_target = l->max_target;
  g->head.max_fields = 100;
  g->listen_fd = g->ep = g->wake = -1;
  g->buf = malloc(l->max_head + 1);
  pthread_mutex_init(&g->mu, NULL);
  if (!g->buf) {
    vs_guard_free(g);
    return NULL;
  }
  return g;
}

int vs_guard_start(vs_guard *g, int listen_fd, struct MHD_Daemon *d) {
  g->listen_fd = listen_fd;
  g->d = d;
  g->ep = epoll_create1(EPOLL_CLOEXEC);
  g->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (g->ep < 0 || g->wake < 0) return vb_error("cannot set up epoll: %s", strerror(errno));
  struct epoll_event a = {.events = EPOLLIN, .data.fd = listen_fd};
  struct epoll_event w = {.events = EPOLLIN, .data.fd = g->wake};
  if (epoll_ctl(g->ep, EPOLL_CTL_ADD, listen_fd, &a) != 0 ||
      epoll_ctl(g->ep, EPOLL_CTL_ADD, g->wake, &w) != 0)
    return vb_error("cannot watch the listening socket: %s", strerror(errno));
  if (pthread_create(&g->thread, NULL, guard_main, g) != 0)
    return vb_error("cannot start the connection thread");
  g->started = 1;
  return 0;
}

void vs_guard_stop(vs_guard *g) {
  if (!g || !g->started) return;
  pthread_mutex_lock(&g->mu);
  g->stopping = 1;
  pthread_mutex_unlock(&g->mu);
  uint64_t one = 1;
  (void)!write(g->wake, &one, sizeof one);
  pthread_join(g->thread, NULL);
  g->started = 0;
  pthread_mutex_lock(&g->mu);
  for (conn *c = g->first, *next; c; c = next) {
    next = c->next;
    if (c->state == C_HEAD || c->state == C_LINGER) conn_close(g, c);
  }
  pthread_mutex_unlock(&g->mu);
}

void vs_guard_free(vs_guard *g) {
  if (!g) return;
  vs_guard_stop(g);
  while (g->first) { /* the library has stopped: what is left are stale records */
    conn *c = g->first;
    if (c->state == C_HEAD || c->state == C_LINGER) close(c->fd);
    conn_unlink(g, c);
  }
  if (g->ep >= 0) close(g->ep);
  if (g->wake >= 0) close(g->wake);
  pthread_mutex_destroy(&g->mu);
  free(g->buf);
  free(g);
}
