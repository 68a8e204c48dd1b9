/*
 * The C client of TokenLedger: see include/tokenledger.h for the contract, docs/protocol.md for
 * the wire.
 *
 * Shape: one non-blocking TLS socket per client. Outgoing frames are appended to an output
 * buffer; `pump` writes what the socket takes and reads every complete reply into the table of
 * pending calls (sorted by call id, because ids are handed out in increasing order). Waiting is a
 * poll() on the socket with the caller's deadline, so submitting any number of calls cannot
 * deadlock against a server that stops reading until its replies are read.
 */
#define _GNU_SOURCE
#include "tokenledger.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Replies may be larger than requests (a history page); anything above this is not a reply. */
#define REPLY_FRAME_MAX (16u << 20)
/* The server's default frame_size_max (docs/protocol.md): a larger request is refused here
 * instead of costing the connection and every call pipelined on it. */
#define REQUEST_FRAME_MAX (1u << 20)
/* Unsent bytes tl_submit lets pile up before it waits for the socket. */
#define SUBMIT_BACKLOG_MAX (1u << 20)
#define READ_CHUNK (16u << 10)

enum entry_state { ENTRY_WAITING, ENTRY_ANSWERED, ENTRY_FAILED, ENTRY_ABANDONED };

typedef struct entry {
    uint64_t call_id;
    enum entry_state state;
    Tokenledger__V1__Response *response; /* ENTRY_ANSWERED */
    tl_code code;                        /* ENTRY_FAILED */
    char message[160];
} entry;

typedef struct buffer {
    uint8_t *data;
    size_t start, end, capacity;
} buffer;

struct tl_client {
    tl_options options;
    char host[256];
    char server_name[256];
    SSL_CTX *context;
    int fd;
    SSL *ssl;
    int want_write; /* the last write stopped because the socket was full */
    buffer in, out;
    entry *entries; /* the live entries are entries[head .. count) */
    size_t head, count, capacity;
    uint64_t next_call_id;
    char trace_parent[256]; /* tl_set_trace_parent; "" when none */
    /* host:port, then the options' servers; a retry moves to the next (address_next). */
    char addresses[1 + TL_SERVERS_MAX][264];
    size_t address_count, address_next;
};

/* ---- Errors ------------------------------------------------------------------------------ */

static void error_clear(tl_error *error) {
    if (error != NULL) memset(error, 0, sizeof *error);
}

static tl_code error_set(tl_error *error, tl_code code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static tl_code error_set(tl_error *error, tl_code code, const char *format, ...) {
    if (error != NULL) {
        memset(error, 0, sizeof *error);
        error->code = code;
        va_list arguments;
        va_start(arguments, format);
        vsnprintf(error->message, sizeof error->message, format, arguments);
        va_end(arguments);
    }
    return code;
}

/* The newest OpenSSL error on this thread's queue as text (and the queue emptied). */
static void openssl_reason(char *out, size_t size) {
    unsigned long code, last = 0;
    while ((code = ERR_get_error()) != 0) last = code;
    if (last == 0) {
        snprintf(out, size, "no detail from OpenSSL");
    } else {
        ERR_error_string_n(last, out, size);
    }
}

static tl_code error_from_wire(tl_error *error, const Tokenledger__V1__Error *wire) {
    tl_code code = (tl_code)wire->code;
    if (wire->code <= 0 || wire->code >= 100) code = TL_ERR_PROTOCOL;
    if (error == NULL) return code;
    memset(error, 0, sizeof *error);
    error->code = code;
    snprintf(error->message, sizeof error->message, "%s", wire->message ? wire->message : "");
    switch (wire->details_case) {
    case TOKENLEDGER__V1__ERROR__DETAILS_BUDGET:
        if (wire->budget == NULL) break;
        error->details = TL_DETAILS_BUDGET;
        error->remaining = wire->budget->remaining;
        error->cap = wire->budget->cap;
        error->resets_at_ms = wire->budget->resets_at_ms;
        break;
    case TOKENLEDGER__V1__ERROR__DETAILS_PLAN:
        if (wire->plan == NULL) break;
        error->details = TL_DETAILS_PLAN;
        error->remaining = wire->plan->remaining;
        error->cap = wire->plan->limit;
        error->resets_at_ms = wire->plan->resets_at_ms;
        break;
    case TOKENLEDGER__V1__ERROR__DETAILS_BALANCE:
        if (wire->balance == NULL) break;
        error->details = TL_DETAILS_BALANCE;
        error->available = wire->balance->available;
        error->requested = wire->balance->requested;
        break;
    case TOKENLEDGER__V1__ERROR__DETAILS_LIMIT:
        if (wire->limit == NULL) break;
        error->details = TL_DETAILS_LIMIT;
        snprintf(error->limit_name, sizeof error->limit_name, "%s", wire->limit->name ? wire->limit->name : "");
        error->limit_value = wire->limit->value;
        break;
    case TOKENLEDGER__V1__ERROR__DETAILS_OWNER:
        if (wire->owner == NULL) break;
        error->details = TL_DETAILS_OWNER;
        error->shard = wire->owner->shard;
        snprintf(error->owner_address, sizeof error->owner_address, "%s", wire->owner->address ? wire->owner->address : "");
        error->epoch = wire->owner->epoch;
        break;
    case TOKENLEDGER__V1__ERROR__DETAILS_QUOTA:
        if (wire->quota == NULL) break;
        error->details = TL_DETAILS_QUOTA;
        snprintf(error->feature, sizeof error->feature, "%s", wire->quota->feature ? wire->quota->feature : "");
        error->used = wire->quota->used;
        error->cap = wire->quota->limit;
        error->resets_at_ms = wire->quota->resets_at_ms;
        error->requested = wire->quota->requested;
        break;
    default:
        break;
    }
    return code;
}

const char *tl_code_name(tl_code code) {
    switch (code) {
    case TL_OK: return "ok";
    case TL_INVALID_ARGUMENT: return "invalid_argument";
    case TL_UNAUTHENTICATED: return "unauthenticated";
    case TL_PERMISSION_DENIED: return "permission_denied";
    case TL_NOT_FOUND: return "not_found";
    case TL_ALREADY_EXISTS: return "already_exists";
    case TL_INSUFFICIENT_BALANCE: return "insufficient_balance";
    case TL_BUDGET_EXCEEDED: return "budget_exceeded";
    case TL_PLAN_LIMIT_REACHED: return "plan_limit_reached";
    case TL_ALREADY_COMMITTED: return "already_committed";
    case TL_ALREADY_RELEASED: return "already_released";
    case TL_EXPIRED: return "expired";
    case TL_IDEMPOTENCY_CONFLICT: return "idempotency_conflict";
    case TL_LIMIT_EXCEEDED: return "limit_exceeded";
    case TL_OVERLOADED: return "overloaded";
    case TL_UNAVAILABLE: return "unavailable";
    case TL_WRONG_OWNER: return "wrong_owner";
    case TL_QUOTA_EXCEEDED: return "quota_exceeded";
    case TL_ERR_USAGE: return "usage";
    case TL_ERR_CONNECT: return "connect";
    case TL_ERR_TLS: return "tls";
    case TL_ERR_CLOSED: return "closed";
    case TL_ERR_TIMEOUT: return "timeout";
    case TL_ERR_PROTOCOL: return "protocol";
    case TL_ERR_NOMEM: return "nomem";
    case TL_ERR_FILE: return "file";
    }
    return "unknown";
}

int tl_code_retryable(tl_code code) {
    return code == TL_OVERLOADED || code == TL_UNAVAILABLE || code == TL_ERR_CONNECT ||
           code == TL_ERR_CLOSED || code == TL_ERR_TIMEOUT;
}

void tl_new_request_id(char out[37]) {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
        /* OpenSSL's generator failing is extraordinary; a clock-and-address id stays unique
         * enough for an idempotency key of this process. */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t a = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
        uint64_t b = (uint64_t)(uintptr_t)out ^ ((uint64_t)getpid() << 32);
        memcpy(bytes, &a, 8);
        memcpy(bytes + 8, &b, 8);
    }
    bytes[6] = (unsigned char)((bytes[6] & 0x0f) | 0x40); /* version 4 */
    bytes[8] = (unsigned char)((bytes[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8],
             bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
}

/* ---- Time and signals ------------------------------------------------------------------- */

static int64_t now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static void sleep_ms(uint32_t milliseconds) {
    struct timespec pause = {milliseconds / 1000, (long)(milliseconds % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) == -1 && errno == EINTR) {
    }
}

/* Writing to a socket the server has closed raises SIGPIPE, which kills a process that has not
 * ignored it. A library must not change the process's signal handling, so the socket I/O runs
 * with SIGPIPE blocked on this thread, and a SIGPIPE it caused is taken before unblocking (the
 * way libpq does it). */
typedef struct sigpipe_guard {
    sigset_t previous;
    int was_pending;
} sigpipe_guard;

static void sigpipe_block(sigpipe_guard *guard) {
    sigset_t pipe_only, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    guard->was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &guard->previous);
}

static void sigpipe_restore(const sigpipe_guard *guard) {
    if (!guard->was_pending) {
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            sigset_t pipe_only;
            sigemptyset(&pipe_only);
            sigaddset(&pipe_only, SIGPIPE);
            struct timespec zero = {0, 0};
            while (sigtimedwait(&pipe_only, NULL, &zero) == -1 && errno == EINTR) {
            }
        }
    }
    pthread_sigmask(SIG_SETMASK, &guard->previous, NULL);
}

/* ---- Buffers ------------------------------------------------------------------------------ */

static int buffer_reserve(buffer *b, size_t more) {
    if (b->start == b->end) b->start = b->end = 0;
    if (b->capacity - b->end >= more) return 1;
    if (b->start > 0) { /* slide the unread bytes to the front first */
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
        if (b->capacity - b->end >= more) return 1;
    }
    size_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity - b->end < more) {
        if (capacity > SIZE_MAX / 2) return 0;
        capacity *= 2;
    }
    uint8_t *data = realloc(b->data, capacity);
    if (data == NULL) return 0;
    b->data = data;
    b->capacity = capacity;
    return 1;
}

static size_t buffer_length(const buffer *b) { return b->end - b->start; }

static void buffer_free(buffer *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- The table of pending calls --------------------------------------------------------------- */

static entry *entry_find(tl_client *c, uint64_t call_id) {
    size_t low = c->head, high = c->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (c->entries[middle].call_id < call_id) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    if (low < c->count && c->entries[low].call_id == call_id) return &c->entries[low];
    return NULL;
}

static int entry_add(tl_client *c, uint64_t call_id) {
    if (c->head > 0 && c->head == c->count) c->head = c->count = 0;
    if (c->count == c->capacity) {
        if (c->head > 0) {
            memmove(c->entries, c->entries + c->head, (c->count - c->head) * sizeof(entry));
            c->count -= c->head;
            c->head = 0;
        } else {
            size_t capacity = c->capacity ? c->capacity * 2 : 64;
            entry *entries = realloc(c->entries, capacity * sizeof(entry));
            if (entries == NULL) return 0;
            c->entries = entries;
            c->capacity = capacity;
        }
    }
    entry *e = &c->entries[c->count++];
    memset(e, 0, sizeof *e);
    e->call_id = call_id;
    e->state = ENTRY_WAITING;
    return 1;
}

/* Removes an entry (its response must already be taken or freed). Awaiting in submission order
 * removes at the head, which costs nothing. */
static void entry_remove(tl_client *c, entry *e) {
    size_t index = (size_t)(e - c->entries);
    if (index == c->head) {
        c->head++;
    } else {
        memmove(e, e + 1, (c->count - index - 1) * sizeof(entry));
        c->count--;
    }
    if (c->head == c->count) c->head = c->count = 0;
}

size_t tl_pending(const tl_client *c) {
    if (c == NULL) return 0;
    size_t pending = 0;
    for (size_t i = c->head; i < c->count; i++) {
        if (c->entries[i].state != ENTRY_ABANDONED) pending++;
    }
    return pending;
}

/* ---- The connection --------------------------------------------------------------------------- */

static void connection_close(tl_client *c) {
    if (c->ssl != NULL) {
        sigpipe_guard guard;
        sigpipe_block(&guard);
        SSL_shutdown(c->ssl); /* best effort close_notify; the socket is non-blocking */
        sigpipe_restore(&guard);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->want_write = 0;
    c->in.start = c->in.end = 0;
    c->out.start = c->out.end = 0;
    ERR_clear_error();
}

/* The connection is lost: every waiting call fails with `code`; abandoned ones are forgotten. */
static tl_code connection_fail(tl_client *c, tl_code code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static tl_code connection_fail(tl_client *c, tl_code code, const char *format, ...) {
    char message[160];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message, sizeof message, format, arguments);
    va_end(arguments);
    connection_close(c);
    size_t kept = c->head;
    for (size_t i = c->head; i < c->count; i++) {
        entry *e = &c->entries[i];
        if (e->state == ENTRY_ABANDONED) continue;
        if (e->state == ENTRY_WAITING) {
            e->state = ENTRY_FAILED;
            e->code = code;
            memcpy(e->message, message, sizeof message);
        }
        c->entries[kept++] = *e;
    }
    c->count = kept;
    if (c->head == c->count) c->head = c->count = 0;
    return code;
}

static int is_address(const char *name) {
    unsigned char address[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, address) == 1 || inet_pton(AF_INET6, name, address) == 1;
}

static tl_code tcp_connect(tl_client *c, int64_t deadline, tl_error *error) {
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)c->options.port);
    struct addrinfo hints, *addresses = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int status = getaddrinfo(c->host, port, &hints, &addresses);
    if (status != 0) {
        return error_set(error, TL_ERR_CONNECT, "%s:%s: %s", c->host, port, gai_strerror(status));
    }
    int last_errno = 0, timed_out = 0;
    for (struct addrinfo *a = addresses; a != NULL && c->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            c->fd = fd;
            break;
        }
        if (errno != EINPROGRESS) {
            last_errno = errno;
            close(fd);
            continue;
        }
        struct pollfd p = {fd, POLLOUT, 0};
        int ready;
        do {
            ready = poll(&p, 1, remaining_ms(deadline));
        } while (ready < 0 && errno == EINTR);
        int socket_error = 0;
        socklen_t length = sizeof socket_error;
        if (ready == 0) {
            timed_out = 1;
            close(fd);
            break;
        }
        if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &socket_error, &length) < 0) {
            socket_error = errno;
        }
        if (socket_error != 0) {
            last_errno = socket_error;
            close(fd);
            continue;
        }
        c->fd = fd;
    }
    freeaddrinfo(addresses);
    if (c->fd >= 0) {
        int on = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        return TL_OK;
    }
    if (timed_out) {
        return error_set(error, TL_ERR_TIMEOUT, "%s:%s: no connection within %u ms", c->host, port,
                         c->options.connect_timeout_ms);
    }
    return error_set(error, TL_ERR_CONNECT, "%s:%s: %s", c->host, port, strerror(last_errno));
}

static tl_code tls_handshake(tl_client *c, int64_t deadline, tl_error *error) {
    c->ssl = SSL_new(c->context);
    if (c->ssl == NULL) return error_set(error, TL_ERR_NOMEM, "SSL_new failed");
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_set_fd(c->ssl, c->fd) != 1) return error_set(error, TL_ERR_TLS, "SSL_set_fd failed");
    if (is_address(c->server_name)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->server_name) != 1) {
            return error_set(error, TL_ERR_TLS, "bad server address %s", c->server_name);
        }
    } else {
        SSL_set_tlsext_host_name(c->ssl, c->server_name);
        if (SSL_set1_host(c->ssl, c->server_name) != 1) {
            return error_set(error, TL_ERR_TLS, "bad server name %s", c->server_name);
        }
    }
    sigpipe_guard guard;
    sigpipe_block(&guard);
    tl_code code = TL_OK;
    for (;;) {
        ERR_clear_error();
        int result = SSL_connect(c->ssl);
        if (result == 1) break;
        int reason = SSL_get_error(c->ssl, result);
        short events;
        if (reason == SSL_ERROR_WANT_READ) {
            events = POLLIN;
        } else if (reason == SSL_ERROR_WANT_WRITE) {
            events = POLLOUT;
        } else {
            long verify = SSL_get_verify_result(c->ssl);
            char detail[160];
            if (verify != X509_V_OK) {
                snprintf(detail, sizeof detail, "server certificate: %s", X509_verify_cert_error_string(verify));
            } else if (reason == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
                snprintf(detail, sizeof detail, "%s", errno ? strerror(errno) : "closed by the server");
            } else {
                openssl_reason(detail, sizeof detail);
            }
            code = error_set(error, TL_ERR_TLS, "TLS handshake with %s:%u: %s", c->host,
                             (unsigned)c->options.port, detail);
            break;
        }
        struct pollfd p = {c->fd, events, 0};
        int ready;
        do {
            ready = poll(&p, 1, remaining_ms(deadline));
        } while (ready < 0 && errno == EINTR);
        if (ready == 0) {
            code = error_set(error, TL_ERR_TIMEOUT, "TLS handshake with %s:%u: no answer within %u ms", c->host,
                             (unsigned)c->options.port, c->options.connect_timeout_ms);
            break;
        }
    }
    sigpipe_restore(&guard);
    if (code == TL_OK && SSL_version(c->ssl) != TLS1_3_VERSION) {
        code = error_set(error, TL_ERR_TLS, "the server negotiated %s, not TLS 1.3", SSL_get_version(c->ssl));
    }
    return code;
}

static tl_code connection_open(tl_client *c, tl_error *error) {
    int64_t deadline = now_ms() + c->options.connect_timeout_ms;
    tl_code code = tcp_connect(c, deadline, error);
    if (code == TL_OK) code = tls_handshake(c, deadline, error);
    if (code != TL_OK) connection_close(c);
    return code;
}

/* ---- Moving bytes ------------------------------------------------------------------------------ */

static void deliver(tl_client *c, Tokenledger__V1__Response *response) {
    entry *e = entry_find(c, response->call_id);
    if (e != NULL && e->state == ENTRY_WAITING) {
        e->response = response;
        e->state = ENTRY_ANSWERED;
        return;
    }
    if (e != NULL && e->state == ENTRY_ABANDONED) entry_remove(c, e);
    /* A reply nobody waits for any more (abandoned after a timeout) is dropped. */
    tokenledger__v1__response__free_unpacked(response, NULL);
}

/* Parses every complete frame in the input buffer. Returns TL_OK, or the failure that closed the
 * connection. */
static tl_code read_frames(tl_client *c) {
    while (buffer_length(&c->in) >= 4) {
        const uint8_t *p = c->in.data + c->in.start;
        uint32_t length = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (length == 0 || length > REPLY_FRAME_MAX) {
            return connection_fail(c, TL_ERR_PROTOCOL, "the server sent a frame of %u bytes", length);
        }
        if (buffer_length(&c->in) - 4 < length) return TL_OK;
        Tokenledger__V1__Response *response = tokenledger__v1__response__unpack(NULL, length, p + 4);
        c->in.start += 4 + (size_t)length;
        if (response == NULL) {
            return connection_fail(c, TL_ERR_PROTOCOL, "the server sent a frame that is not a Response");
        }
        if (response->call_id == 0) {
            /* A refusal of the whole connection (unknown principal, a frame it could not read). */
            tl_code code = TL_ERR_PROTOCOL;
            char message[160] = "a reply without a call id";
            if (response->result_case == TOKENLEDGER__V1__RESPONSE__RESULT_ERROR && response->error != NULL) {
                tl_error wire;
                code = error_from_wire(&wire, response->error);
                snprintf(message, sizeof message, "%s", wire.message);
            }
            tokenledger__v1__response__free_unpacked(response, NULL);
            return connection_fail(c, code, "%s", message);
        }
        deliver(c, response);
    }
    return TL_OK;
}

/* Writes what the socket takes and reads what it has, without waiting. Returns TL_OK or the
 * failure that closed the connection (every waiting call then holds that failure). */
static tl_code pump(tl_client *c) {
    if (c->ssl == NULL) return TL_ERR_CLOSED;
    c->want_write = 0;
    while (buffer_length(&c->out) > 0) {
        size_t length = buffer_length(&c->out);
        ERR_clear_error();
        int written = SSL_write(c->ssl, c->out.data + c->out.start, length > INT_MAX ? INT_MAX : (int)length);
        if (written > 0) {
            c->out.start += (size_t)written;
            continue;
        }
        int reason = SSL_get_error(c->ssl, written);
        if (reason == SSL_ERROR_WANT_WRITE) {
            c->want_write = 1;
            break;
        }
        if (reason == SSL_ERROR_WANT_READ) break;
        char detail[160];
        if (reason == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            snprintf(detail, sizeof detail, "%s", errno ? strerror(errno) : "closed");
        } else {
            openssl_reason(detail, sizeof detail);
        }
        return connection_fail(c, TL_ERR_CLOSED, "writing to the server: %s", detail);
    }
    for (;;) {
        if (!buffer_reserve(&c->in, READ_CHUNK)) return connection_fail(c, TL_ERR_NOMEM, "out of memory");
        size_t room = c->in.capacity - c->in.end;
        ERR_clear_error();
        int got = SSL_read(c->ssl, c->in.data + c->in.end, room > INT_MAX ? INT_MAX : (int)room);
        if (got > 0) {
            c->in.end += (size_t)got;
            tl_code code = read_frames(c);
            if (code != TL_OK) return code;
            continue;
        }
        int reason = SSL_get_error(c->ssl, got);
        if (reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE) return TL_OK;
        if (reason == SSL_ERROR_ZERO_RETURN) return connection_fail(c, TL_ERR_CLOSED, "closed by the server");
        if (reason == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            return connection_fail(c, TL_ERR_CLOSED, "%s", errno ? strerror(errno) : "closed by the server");
        }
        /* Under TLS 1.3 the server's verdict on our certificate arrives here, as an alert. */
        char detail[160];
        openssl_reason(detail, sizeof detail);
        return connection_fail(c, TL_ERR_TLS, "TLS: %s", detail);
    }
}

/* Waits until the socket can move bytes in the direction pump needs, or the deadline. Returns 0 at
 * the deadline. */
static int wait_socket(tl_client *c, int64_t deadline) {
    struct pollfd p = {c->fd, (short)(POLLIN | (c->want_write ? POLLOUT : 0)), 0};
    int ready;
    do {
        ready = poll(&p, 1, remaining_ms(deadline));
    } while (ready < 0 && errno == EINTR);
    return ready != 0;
}

/* ---- Client life --------------------------------------------------------------------------------- */

void tl_options_init(tl_options *options) {
    if (options == NULL) return;
    memset(options, 0, sizeof *options);
    options->host = "127.0.0.1";
    options->port = 7443;
    options->data_dir = "./ledger-data";
    options->connect_timeout_ms = 10000;
    options->call_timeout_ms = 30000;
    options->attempts = 3;
    options->backoff_ms = 50;
}

static tl_code load_context(tl_client *c, tl_error *error) {
    const tl_options *o = &c->options;
    const char *data_dir = o->data_dir ? o->data_dir : "./ledger-data";
    char ca[4096], cert[4096], key[4096];
    snprintf(ca, sizeof ca, "%s", o->ca_file ? o->ca_file : "");
    snprintf(cert, sizeof cert, "%s", o->cert_file ? o->cert_file : "");
    snprintf(key, sizeof key, "%s", o->key_file ? o->key_file : "");
    if (!o->ca_file) snprintf(ca, sizeof ca, "%s/tls/ca.pem", data_dir);
    if (!o->cert_file) snprintf(cert, sizeof cert, "%s/tls/admin.pem", data_dir);
    if (!o->key_file) snprintf(key, sizeof key, "%s/tls/admin-key.pem", data_dir);

    c->context = SSL_CTX_new(TLS_client_method());
    if (c->context == NULL) return error_set(error, TL_ERR_NOMEM, "SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(c->context, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(c->context, TLS1_3_VERSION);
    SSL_CTX_set_verify(c->context, SSL_VERIFY_PEER, NULL);
    char detail[160];
    if (SSL_CTX_load_verify_locations(c->context, ca, NULL) != 1) {
        openssl_reason(detail, sizeof detail);
        return error_set(error, TL_ERR_FILE, "CA file %s: %s", ca, detail);
    }
    if (SSL_CTX_use_certificate_chain_file(c->context, cert) != 1) {
        openssl_reason(detail, sizeof detail);
        return error_set(error, TL_ERR_FILE, "certificate file %s: %s", cert, detail);
    }
    if (SSL_CTX_use_PrivateKey_file(c->context, key, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(detail, sizeof detail);
        return error_set(error, TL_ERR_FILE, "key file %s: %s", key, detail);
    }
    if (SSL_CTX_check_private_key(c->context) != 1) {
        return error_set(error, TL_ERR_FILE, "key file %s does not belong to certificate %s", key, cert);
    }
    return TL_OK;
}

static tl_code parse_servers(tl_client *c, const char *servers, tl_error *error);
static tl_code move_to(tl_client *c, const char *address, tl_error *error);

tl_code tl_connect(const tl_options *options, tl_client **client, tl_error *error) {
    if (client == NULL) return error_set(error, TL_ERR_USAGE, "tl_connect: client is NULL");
    *client = NULL;
    tl_client *c = calloc(1, sizeof *c);
    if (c == NULL) return error_set(error, TL_ERR_NOMEM, "out of memory");
    c->fd = -1;
    if (options != NULL) {
        c->options = *options;
    } else {
        tl_options_init(&c->options);
    }
    const char *host = c->options.host ? c->options.host : "127.0.0.1";
    const char *name = c->options.server_name ? c->options.server_name : host;
    if (strlen(host) >= sizeof c->host || strlen(name) >= sizeof c->server_name) {
        free(c);
        return error_set(error, TL_ERR_USAGE, "host or server name longer than 255 bytes");
    }
    snprintf(c->host, sizeof c->host, "%s", host);
    snprintf(c->server_name, sizeof c->server_name, "%s", name);
    /* The path fields are read now and not kept. */
    c->options.host = NULL;
    c->options.server_name = NULL;
    if (c->options.attempts == 0) c->options.attempts = 1;
    tl_code code = parse_servers(c, c->options.servers, error);
    c->options.servers = NULL;
    if (code == TL_OK) code = load_context(c, error);
    c->options.data_dir = c->options.ca_file = c->options.cert_file = c->options.key_file = NULL;
    if (code == TL_OK) code = connection_open(c, error);
    /* Cluster mode: the first node that answers. */
    while (code != TL_OK && tl_code_retryable(code) && c->address_next + 1 < c->address_count) {
        code = move_to(c, c->addresses[++c->address_next], error);
    }
    if (code != TL_OK) {
        tl_close(c);
        return code;
    }
    error_clear(error);
    *client = c;
    return TL_OK;
}

void tl_close(tl_client *c) {
    if (c == NULL) return;
    connection_close(c);
    for (size_t i = c->head; i < c->count; i++) {
        if (c->entries[i].response != NULL) tokenledger__v1__response__free_unpacked(c->entries[i].response, NULL);
    }
    free(c->entries);
    buffer_free(&c->in);
    buffer_free(&c->out);
    if (c->context != NULL) SSL_CTX_free(c->context);
    free(c);
}

void tl_response_free(Tokenledger__V1__Response *response) {
    if (response != NULL) tokenledger__v1__response__free_unpacked(response, NULL);
}

void tl_result_free(void *result) {
    if (result != NULL) protobuf_c_message_free_unpacked((ProtobufCMessage *)result, NULL);
}

/* ---- Calls ----------------------------------------------------------------------------------------- */

static const ProtobufCFieldDescriptor *call_field(const ProtobufCMessageDescriptor *envelope, unsigned call) {
    return protobuf_c_message_descriptor_get_field(envelope, call);
}

static tl_code check_request(const Tokenledger__V1__Request *request, tl_error *error) {
    if (request == NULL) return error_set(error, TL_ERR_USAGE, "the request is NULL");
    if (request->base.descriptor != &tokenledger__v1__request__descriptor) {
        return error_set(error, TL_ERR_USAGE, "not a Tokenledger__V1__Request (use TOKENLEDGER__V1__REQUEST__INIT)");
    }
    const ProtobufCFieldDescriptor *field = call_field(&tokenledger__v1__request__descriptor, request->call_case);
    if (request->call_case == TOKENLEDGER__V1__REQUEST__CALL__NOT_SET || field == NULL) {
        return error_set(error, TL_ERR_USAGE, "the request names no call (call_case %d)", (int)request->call_case);
    }
    if (request->call_case == TOKENLEDGER__V1__REQUEST__CALL_WATCH || request->call_case == TOKENLEDGER__V1__REQUEST__CALL_UNWATCH) {
        /* A watch streams many replies under one call id; this client's calls are one request,
           one reply. C services take events from the webhook sink (docs/operations.md). */
        return error_set(error, TL_ERR_USAGE, "watch streams are not supported by the C client; use the webhook sink");
    }
    const ProtobufCMessage *call = *(ProtobufCMessage *const *)((const char *)request + field->offset);
    if (call == NULL) return error_set(error, TL_ERR_USAGE, "the request's %s message is NULL", field->name);
    if (call->descriptor != field->descriptor) {
        return error_set(error, TL_ERR_USAGE, "the request's %s is not a %s", field->name,
                         ((const ProtobufCMessageDescriptor *)field->descriptor)->name);
    }
    if (!protobuf_c_message_check(&request->base)) {
        return error_set(error, TL_ERR_USAGE, "the request has a NULL string or message where one is required");
    }
    return TL_OK;
}

tl_code tl_set_trace_parent(tl_client *c, const char *traceparent, tl_error *error) {
    if (c == NULL) return error_set(error, TL_ERR_USAGE, "tl_set_trace_parent: client is NULL");
    if (traceparent == NULL) traceparent = "";
    size_t length = strlen(traceparent);
    if (length >= sizeof c->trace_parent) {
        return error_set(error, TL_ERR_USAGE, "a traceparent of %zu bytes is longer than 255", length);
    }
    memcpy(c->trace_parent, traceparent, length + 1);
    return TL_OK;
}

tl_code tl_submit(tl_client *c, const Tokenledger__V1__Request *request, uint64_t *call_id, tl_error *error) {
    if (c == NULL || call_id == NULL) return error_set(error, TL_ERR_USAGE, "tl_submit: client or call_id is NULL");
    *call_id = 0;
    tl_code code = check_request(request, error);
    if (code != TL_OK) return code;
    Tokenledger__V1__Request numbered = *request;
    numbered.call_id = c->next_call_id + 1;
    if (c->trace_parent[0] != '\0' && (numbered.trace_parent == NULL || numbered.trace_parent[0] == '\0')) {
        numbered.trace_parent = c->trace_parent;
    }
    size_t size = protobuf_c_message_get_packed_size(&numbered.base);
    if (size > REQUEST_FRAME_MAX) {
        error_set(error, TL_LIMIT_EXCEEDED, "a request of %zu bytes is above the server's frame_size_max", size);
        if (error != NULL) {
            error->details = TL_DETAILS_LIMIT;
            snprintf(error->limit_name, sizeof error->limit_name, "frame_size_max");
            error->limit_value = REQUEST_FRAME_MAX;
        }
        return TL_LIMIT_EXCEEDED;
    }
    if (c->ssl == NULL) {
        code = connection_open(c, error);
        if (code != TL_OK) return code;
    }
    if (!buffer_reserve(&c->out, 4 + size) || !entry_add(c, numbered.call_id)) {
        return error_set(error, TL_ERR_NOMEM, "out of memory");
    }
    uint8_t *p = c->out.data + c->out.end;
    p[0] = (uint8_t)(size >> 24);
    p[1] = (uint8_t)(size >> 16);
    p[2] = (uint8_t)(size >> 8);
    p[3] = (uint8_t)size;
    protobuf_c_message_pack(&numbered.base, p + 4);
    c->out.end += 4 + size;
    c->next_call_id = numbered.call_id;
    *call_id = numbered.call_id;

    /* Failures from here on belong to the calls: tl_await reports them. */
    sigpipe_guard guard;
    sigpipe_block(&guard);
    pump(c);
    if (c->ssl != NULL && buffer_length(&c->out) > SUBMIT_BACKLOG_MAX) {
        int64_t deadline = now_ms() + c->options.call_timeout_ms;
        while (c->ssl != NULL && buffer_length(&c->out) > SUBMIT_BACKLOG_MAX) {
            if (!wait_socket(c, deadline)) {
                connection_fail(c, TL_ERR_TIMEOUT, "the server took no request bytes for %u ms",
                                c->options.call_timeout_ms);
                break;
            }
            pump(c);
        }
    }
    sigpipe_restore(&guard);
    error_clear(error);
    return TL_OK;
}

tl_code tl_await(tl_client *c, uint64_t call_id, Tokenledger__V1__Response **response, tl_error *error) {
    if (c == NULL || response == NULL) return error_set(error, TL_ERR_USAGE, "tl_await: client or response is NULL");
    *response = NULL;
    entry *e = entry_find(c, call_id);
    if (e == NULL || e->state == ENTRY_ABANDONED) {
        return error_set(error, TL_ERR_USAGE, "call %llu is not pending", (unsigned long long)call_id);
    }
    if (e->state == ENTRY_WAITING) {
        int64_t deadline = now_ms() + c->options.call_timeout_ms;
        sigpipe_guard guard;
        sigpipe_block(&guard);
        pump(c);
        /* The table may move while bytes are pumped: look the entry up again each time. */
        while ((e = entry_find(c, call_id))->state == ENTRY_WAITING) {
            if (!wait_socket(c, deadline)) {
                e->state = ENTRY_ABANDONED;
                sigpipe_restore(&guard);
                return error_set(error, TL_ERR_TIMEOUT, "no reply to call %llu within %u ms",
                                 (unsigned long long)call_id, c->options.call_timeout_ms);
            }
            pump(c);
        }
        sigpipe_restore(&guard);
    }
    if (e->state == ENTRY_FAILED) {
        tl_code code = error_set(error, e->code, "%s", e->message);
        entry_remove(c, e);
        return code;
    }
    Tokenledger__V1__Response *reply = e->response;
    entry_remove(c, e);
    if (reply->result_case == TOKENLEDGER__V1__RESPONSE__RESULT_ERROR) {
        tl_code code = reply->error != NULL ? error_from_wire(error, reply->error)
                                            : error_set(error, TL_ERR_PROTOCOL, "an error reply without an error");
        tokenledger__v1__response__free_unpacked(reply, NULL);
        return code;
    }
    if (reply->result_case == TOKENLEDGER__V1__RESPONSE__RESULT__NOT_SET) {
        tokenledger__v1__response__free_unpacked(reply, NULL);
        return error_set(error, TL_ERR_PROTOCOL, "a reply without a result");
    }
    error_clear(error);
    *response = reply;
    return TL_OK;
}

/* For a change whose request_id is empty: a shallow copy of the request whose call message is a
 * shallow copy with a fresh id, so that every retry sends the same id. `*copy` is malloc'ed (or
 * NULL when the request is used as it is). */
static tl_code with_request_id(const Tokenledger__V1__Request *request, Tokenledger__V1__Request *prepared,
                               void **copy, char id[37], tl_error *error) {
    *prepared = *request;
    *copy = NULL;
    const ProtobufCFieldDescriptor *field = call_field(&tokenledger__v1__request__descriptor, request->call_case);
    const ProtobufCMessage *call = *(ProtobufCMessage *const *)((const char *)request + field->offset);
    const ProtobufCFieldDescriptor *id_field =
        protobuf_c_message_descriptor_get_field_by_name(call->descriptor, "request_id");
    if (id_field == NULL) return TL_OK;
    const char *current = *(const char *const *)((const char *)call + id_field->offset);
    if (current != NULL && current[0] != '\0') return TL_OK;
    *copy = malloc(call->descriptor->sizeof_message);
    if (*copy == NULL) return error_set(error, TL_ERR_NOMEM, "out of memory");
    memcpy(*copy, call, call->descriptor->sizeof_message);
    tl_new_request_id(id);
    *(char **)((char *)*copy + id_field->offset) = id;
    *(void **)((char *)prepared + field->offset) = *copy;
    return TL_OK;
}

/* Splits "host:port" (or "[v6]:port"): the host's length (brackets included) and the port.
 * Returns 0 when it is not one. */
static int split_address(const char *address, size_t *host_length, uint16_t *port) {
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon == address) return 0;
    char *end = NULL;
    unsigned long value = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || value == 0 || value > 65535) return 0;
    *host_length = (size_t)(colon - address);
    *port = (uint16_t)value;
    return 1;
}

/* Points the client at `address` ("host:port" or "[v6]:port"): the connection closes and the
 * next call opens one there. The server name follows the host unless the options named one. */
static tl_code set_address(tl_client *c, const char *address, tl_error *error) {
    size_t length;
    uint16_t port;
    if (!split_address(address, &length, &port) || length >= sizeof c->host) {
        return error_set(error, TL_ERR_PROTOCOL, "%s is not host:port", address);
    }
    if (address[0] == '[' && length >= 2 && address[length - 1] == ']') {
        address++;
        length -= 2;
    }
    int name_follows_host = strcmp(c->server_name, c->host) == 0;
    memcpy(c->host, address, length);
    c->host[length] = '\0';
    if (name_follows_host) snprintf(c->server_name, sizeof c->server_name, "%s", c->host);
    c->options.port = port;
    connection_close(c);
    return TL_OK;
}

/* Cluster mode: moves the client's connection to `address` (the owner a wrong_owner named). */
static tl_code move_to(tl_client *c, const char *address, tl_error *error) {
    tl_code code = set_address(c, address, error);
    return code == TL_OK ? connection_open(c, error) : code;
}

/* Fills c->addresses with host:port and the options' servers. */
static tl_code parse_servers(tl_client *c, const char *servers, tl_error *error) {
    if (strchr(c->host, ':') != NULL) {
        snprintf(c->addresses[0], sizeof c->addresses[0], "[%s]:%u", c->host, (unsigned)c->options.port);
    } else {
        snprintf(c->addresses[0], sizeof c->addresses[0], "%s:%u", c->host, (unsigned)c->options.port);
    }
    c->address_count = 1;
    for (const char *next = servers; next != NULL && *next != '\0';) {
        const char *comma = strchr(next, ',');
        size_t length = comma != NULL ? (size_t)(comma - next) : strlen(next);
        if (c->address_count > TL_SERVERS_MAX) {
            return error_set(error, TL_ERR_USAGE, "servers: more than %d addresses", TL_SERVERS_MAX);
        }
        if (length == 0 || length >= sizeof c->addresses[0]) return error_set(error, TL_ERR_USAGE, "servers: an empty or overlong address");
        char *slot = c->addresses[c->address_count++];
        memcpy(slot, next, length);
        slot[length] = '\0';
        size_t host_length;
        uint16_t port;
        if (!split_address(slot, &host_length, &port)) return error_set(error, TL_ERR_USAGE, "servers: %s is not host:port", slot);
        next = comma != NULL ? comma + 1 : NULL;
    }
    return TL_OK;
}

tl_code tl_call(tl_client *c, const Tokenledger__V1__Request *request, Tokenledger__V1__Response **response,
                tl_error *error) {
    if (c == NULL || response == NULL) return error_set(error, TL_ERR_USAGE, "tl_call: client or response is NULL");
    *response = NULL;
    tl_error local;
    if (error == NULL) error = &local; /* the owner's address of a wrong_owner is needed below */
    tl_code code = check_request(request, error);
    if (code != TL_OK) return code;
    Tokenledger__V1__Request prepared;
    void *copy;
    char id[37];
    code = with_request_id(request, &prepared, &copy, id, error);
    if (code != TL_OK) return code;
    uint32_t delay = c->options.backoff_ms;
    uint32_t redirects = 0;
    for (uint32_t attempt = 1;; attempt++) {
        uint64_t call_id;
        code = tl_submit(c, &prepared, &call_id, error);
        if (code == TL_OK) code = tl_await(c, call_id, response, error);
        /* Cluster mode: go to the node that serves the tenant, when no other call is in flight on
         * this connection (moving it would fail them), with the same request id. */
        if (code == TL_WRONG_OWNER && error->details == TL_DETAILS_OWNER && redirects < TL_REDIRECTS_MAX &&
            c->head == c->count) {
            char owner[sizeof error->owner_address];
            snprintf(owner, sizeof owner, "%s", error->owner_address);
            redirects++;
            attempt--;
            code = move_to(c, owner, error);
            if (code == TL_OK) continue;
        }
        if (code == TL_OK || !tl_code_retryable(code) || attempt >= c->options.attempts) break;
        /* Cluster mode: the next node serves the tenant or names its owner. */
        if (c->address_count > 1 && c->head == c->count) {
            c->address_next = (c->address_next + 1) % c->address_count;
            tl_error ignored;
            (void)set_address(c, c->addresses[c->address_next], &ignored);
        }
        sleep_ms(delay);
        delay = delay > UINT32_MAX / 2 ? UINT32_MAX : delay * 2;
    }
    free(copy);
    return code;
}

static tl_code typed_call(tl_client *c, Tokenledger__V1__Request__CallCase call,
                          const ProtobufCMessageDescriptor *expected, const void *request, void **result,
                          tl_error *error) {
    if (result == NULL) return error_set(error, TL_ERR_USAGE, "result is NULL");
    *result = NULL;
    if (request == NULL) return error_set(error, TL_ERR_USAGE, "the request is NULL");
    if (((const ProtobufCMessage *)request)->descriptor != expected) {
        return error_set(error, TL_ERR_USAGE, "the request is not a %s (use its __INIT macro)", expected->name);
    }
    Tokenledger__V1__Request envelope = TOKENLEDGER__V1__REQUEST__INIT;
    envelope.call_case = call;
    const ProtobufCFieldDescriptor *field = call_field(&tokenledger__v1__request__descriptor, call);
    *(const void **)((char *)&envelope + field->offset) = request;
    Tokenledger__V1__Response *response;
    tl_code code = tl_call(c, &envelope, &response, error);
    if (code != TL_OK) return code;
    if ((unsigned)response->result_case != (unsigned)call) {
        tl_code mismatch = error_set(error, TL_ERR_PROTOCOL, "asked for call %u, the reply holds result %u",
                                     (unsigned)call, (unsigned)response->result_case);
        tokenledger__v1__response__free_unpacked(response, NULL);
        return mismatch;
    }
    /* Detach the result from the envelope (protobuf-c allocates every message separately and frees
     * only the oneof member the case names), then free the envelope. */
    const ProtobufCFieldDescriptor *result_field = call_field(&tokenledger__v1__response__descriptor, call);
    void **slot = (void **)((char *)response + result_field->offset);
    *result = *slot;
    *slot = NULL;
    response->result_case = TOKENLEDGER__V1__RESPONSE__RESULT__NOT_SET;
    tokenledger__v1__response__free_unpacked(response, NULL);
    return TL_OK;
}

#define TL_TYPED_CALL(name, Request, Result, CASE, descriptor)                                        \
    tl_code tl_##name(tl_client *c, const Request *request, Result **result, tl_error *error) {       \
        return typed_call(c, TOKENLEDGER__V1__REQUEST__CALL_##CASE, &descriptor, request, (void **)result, error); \
    }

TL_TYPED_CALL(reserve, Tokenledger__V1__ReserveRequest, Tokenledger__V1__ReserveResult, RESERVE,
              tokenledger__v1__reserve_request__descriptor)
TL_TYPED_CALL(charge, Tokenledger__V1__ChargeRequest, Tokenledger__V1__ChargeResult, CHARGE,
              tokenledger__v1__charge_request__descriptor)
TL_TYPED_CALL(extend_hold, Tokenledger__V1__ExtendHoldRequest, Tokenledger__V1__ExtendHoldResult, EXTEND_HOLD,
              tokenledger__v1__extend_hold_request__descriptor)
TL_TYPED_CALL(increase_hold, Tokenledger__V1__IncreaseHoldRequest, Tokenledger__V1__IncreaseHoldResult, INCREASE_HOLD,
              tokenledger__v1__increase_hold_request__descriptor)
TL_TYPED_CALL(commit, Tokenledger__V1__CommitRequest, Tokenledger__V1__CommitResult, COMMIT,
              tokenledger__v1__commit_request__descriptor)
TL_TYPED_CALL(release, Tokenledger__V1__ReleaseRequest, Tokenledger__V1__ReleaseResult, RELEASE,
              tokenledger__v1__release_request__descriptor)
TL_TYPED_CALL(refund, Tokenledger__V1__RefundRequest, Tokenledger__V1__RefundResult, REFUND,
              tokenledger__v1__refund_request__descriptor)
TL_TYPED_CALL(estimate, Tokenledger__V1__EstimateRequest, Tokenledger__V1__EstimateResult, ESTIMATE,
              tokenledger__v1__estimate_request__descriptor)
TL_TYPED_CALL(balance, Tokenledger__V1__BalanceRequest, Tokenledger__V1__BalanceResult, BALANCE,
              tokenledger__v1__balance_request__descriptor)
TL_TYPED_CALL(create_tenant, Tokenledger__V1__CreateTenantRequest, Tokenledger__V1__CreateTenantResult,
              CREATE_TENANT, tokenledger__v1__create_tenant_request__descriptor)
TL_TYPED_CALL(configure_tenant, Tokenledger__V1__ConfigureTenantRequest, Tokenledger__V1__ConfigureTenantResult,
              CONFIGURE_TENANT, tokenledger__v1__configure_tenant_request__descriptor)
TL_TYPED_CALL(set_member, Tokenledger__V1__SetMemberRequest, Tokenledger__V1__SetMemberResult, SET_MEMBER,
              tokenledger__v1__set_member_request__descriptor)
TL_TYPED_CALL(grant, Tokenledger__V1__GrantRequest, Tokenledger__V1__GrantResult, GRANT,
              tokenledger__v1__grant_request__descriptor)
TL_TYPED_CALL(purchase, Tokenledger__V1__PurchaseRequest, Tokenledger__V1__PurchaseResult, PURCHASE,
              tokenledger__v1__purchase_request__descriptor)
TL_TYPED_CALL(void_grant, Tokenledger__V1__VoidGrantRequest, Tokenledger__V1__VoidGrantResult, VOID_GRANT,
              tokenledger__v1__void_grant_request__descriptor)
TL_TYPED_CALL(refund_purchase, Tokenledger__V1__RefundPurchaseRequest, Tokenledger__V1__RefundPurchaseResult,
              REFUND_PURCHASE, tokenledger__v1__refund_purchase_request__descriptor)
TL_TYPED_CALL(history, Tokenledger__V1__HistoryRequest, Tokenledger__V1__HistoryResult, HISTORY,
              tokenledger__v1__history_request__descriptor)
TL_TYPED_CALL(list_holds, Tokenledger__V1__ListHoldsRequest, Tokenledger__V1__ListHoldsResult, LIST_HOLDS,
              tokenledger__v1__list_holds_request__descriptor)
TL_TYPED_CALL(list_grants, Tokenledger__V1__ListGrantsRequest, Tokenledger__V1__ListGrantsResult, LIST_GRANTS,
              tokenledger__v1__list_grants_request__descriptor)
TL_TYPED_CALL(list_tenants, Tokenledger__V1__ListTenantsRequest, Tokenledger__V1__ListTenantsResult, LIST_TENANTS,
              tokenledger__v1__list_tenants_request__descriptor)
TL_TYPED_CALL(catalog, Tokenledger__V1__CatalogRequest, Tokenledger__V1__CatalogResult, CATALOG,
              tokenledger__v1__catalog_request__descriptor)
TL_TYPED_CALL(install_catalog, Tokenledger__V1__InstallCatalogRequest, Tokenledger__V1__InstallCatalogResult,
              INSTALL_CATALOG, tokenledger__v1__install_catalog_request__descriptor)
TL_TYPED_CALL(health, Tokenledger__V1__HealthRequest, Tokenledger__V1__HealthResult, HEALTH,
              tokenledger__v1__health_request__descriptor)
TL_TYPED_CALL(shard_map, Tokenledger__V1__ShardMapRequest, Tokenledger__V1__ShardMapResult, SHARD_MAP,
              tokenledger__v1__shard_map_request__descriptor)
TL_TYPED_CALL(admin_snapshot, Tokenledger__V1__AdminSnapshotRequest, Tokenledger__V1__AdminSnapshotResult,
              ADMIN_SNAPSHOT, tokenledger__v1__admin_snapshot_request__descriptor)
TL_TYPED_CALL(admin_audit, Tokenledger__V1__AdminAuditRequest, Tokenledger__V1__AdminAuditResult, ADMIN_AUDIT,
              tokenledger__v1__admin_audit_request__descriptor)
TL_TYPED_CALL(admin_backup, Tokenledger__V1__AdminBackupRequest, Tokenledger__V1__AdminBackupResult, ADMIN_BACKUP,
              tokenledger__v1__admin_backup_request__descriptor)
