/* libcurl's multi-socket API on the libevent loop, as curl's hiperfifo.c:
 * curl tells us which sockets to watch (socket_cb) and when to call it back
 * (timer_cb); libevent tells curl what happened (curl_multi_socket_action);
 * finished transfers are collected with curl_multi_info_read. */
#include "curl_loop.h"

#include "log.h"

/* One easy handle in the multi. The record hangs off the handle through
 * CURLOPT_PRIVATE; the value the caller had there is put back before done. */
struct transfer {
    CURL *easy;
    curl_loop_done_fn done;
    void *arg;
    void *caller_private;
    struct transfer *prev, *next;
};

/* One socket curl asked us to watch, attached with curl_multi_assign. */
struct watch {
    int what; /* CURL_POLL_IN, _OUT or _INOUT */
    struct event *ev;
    struct watch *prev, *next;
};

struct curl_loop {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct transfer *transfers;
    size_t running;
    /* Kept in a list too: curl_multi_cleanup() does not promise a
     * CURL_POLL_REMOVE for every socket, and what it leaves we free. */
    struct watch *watches;
    int dispatching;  /* inside collect_done(): done callbacks are running */
    int freeing;      /* curl_loop_free() has begun: no new transfers */
    int free_pending; /* curl_loop_free() was called from a done callback */
};

static void transfer_unlink(struct curl_loop *l, struct transfer *t)
{
    if (l->transfers == t)
        l->transfers = t->next;
    else
        t->prev->next = t->next;
    if (t->next) t->next->prev = t->prev;
    l->running--;
}

static void watch_free(struct curl_loop *l, struct watch *w)
{
    if (l->watches == w)
        l->watches = w->next;
    else
        w->prev->next = w->next;
    if (w->next) w->next->prev = w->prev;
    if (w->ev) event_free(w->ev);
    free(w);
}

/* Takes t out of the multi and reports result. t is freed before done runs,
 * so done may add transfers or free the loop. */
static void transfer_finish(struct curl_loop *l, struct transfer *t, CURLcode result)
{
    CURL *easy = t->easy;
    curl_loop_done_fn done = t->done;
    void *arg = t->arg;
    CURLMcode mc = curl_multi_remove_handle(l->multi, easy);
    if (mc != CURLM_OK)
        log_error(json_pack("{s:s}", "error", curl_multi_strerror(mc)),
                  "curl_loop: cannot remove a finished transfer from the multi handle");
    CURLcode rc = curl_easy_setopt(easy, CURLOPT_PRIVATE, t->caller_private);
    if (rc != CURLE_OK)
        log_error(json_pack("{s:s}", "error", curl_easy_strerror(rc)),
                  "curl_loop: cannot restore CURLOPT_PRIVATE");
    transfer_unlink(l, t);
    free(t);
    done(easy, result, arg);
}

static void loop_destroy(struct curl_loop *l)
{
    CURLMcode mc = curl_multi_cleanup(l->multi);
    if (mc != CURLM_OK)
        log_error(json_pack("{s:s}", "error", curl_multi_strerror(mc)),
                  "curl_loop: curl_multi_cleanup failed");
    while (l->watches)
        watch_free(l, l->watches);
    event_free(l->timer);
    free(l);
}

/* Reports every finished transfer. A done callback may free the loop: l is
 * gone on return then, and the caller must not touch it. */
static void collect_done(struct curl_loop *l)
{
    CURLMsg *msg;
    int queued;
    l->dispatching++;
    while (!l->free_pending && (msg = curl_multi_info_read(l->multi, &queued))) {
        if (msg->msg != CURLMSG_DONE) continue;
        /* msg dies with curl_multi_remove_handle(): copy what we need */
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        void *t = NULL;
        CURLcode rc = curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
        if (rc != CURLE_OK || !t) {
            /* someone replaced CURLOPT_PRIVATE: drop the handle rather than
             * read this message again on every turn */
            log_error(json_pack("{s:s}", "error", curl_easy_strerror(rc)),
                      "curl_loop: a finished transfer has lost its record");
            CURLMcode mc = curl_multi_remove_handle(l->multi, easy);
            if (mc != CURLM_OK)
                log_error(json_pack("{s:s}", "error", curl_multi_strerror(mc)),
                          "curl_loop: cannot remove a transfer from the multi handle");
            continue;
        }
        transfer_finish(l, t, result);
    }
    l->dispatching--;
    if (l->free_pending && l->dispatching == 0) loop_destroy(l);
}

static void socket_action(struct curl_loop *l, curl_socket_t fd, int ev_bitmask)
{
    int still_running;
    CURLMcode mc = curl_multi_socket_action(l->multi, fd, ev_bitmask, &still_running);
    if (mc != CURLM_OK)
        log_error(json_pack("{s:s,s:i}", "error", curl_multi_strerror(mc), "fd", (int)fd),
                  "curl_loop: curl_multi_socket_action failed");
    collect_done(l);
}

/* libevent: a watched socket is ready. The watch may be freed in here (curl
 * closes the socket), so only the loop is passed. */
static void on_socket(evutil_socket_t fd, short events, void *arg)
{
    int action = 0;
    if (events & EV_READ) action |= CURL_CSELECT_IN;
    if (events & EV_WRITE) action |= CURL_CSELECT_OUT;
    socket_action(arg, fd, action);
}

/* libevent: curl's timeout expired (or curl asked for an immediate call). */
static void on_timer(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION: curl wants fd watched for what, or forgotten. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct curl_loop *l = userp;
    struct watch *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (w) watch_free(l, w);
        return 0;
    }
    if (!w) {
        w = xcalloc(1, sizeof(*w));
        w->next = l->watches;
        if (l->watches) l->watches->prev = w;
        l->watches = w;
        CURLMcode mc = curl_multi_assign(l->multi, fd, w);
        if (mc != CURLM_OK) {
            log_error(json_pack("{s:s,s:i}", "error", curl_multi_strerror(mc), "fd", (int)fd),
                      "curl_loop: curl_multi_assign failed");
            watch_free(l, w);
            return -1;
        }
    }
    if (w->ev && w->what == what) return 0;
    if (w->ev) event_free(w->ev);
    short kind = EV_PERSIST;
    if (what & CURL_POLL_IN) kind |= EV_READ;
    if (what & CURL_POLL_OUT) kind |= EV_WRITE;
    w->what = what;
    w->ev = event_new(l->base, fd, kind, on_socket, l);
    if (!w->ev || event_add(w->ev, NULL) != 0) {
        log_error(json_pack("{s:i}", "fd", (int)fd), "curl_loop: cannot watch a socket");
        if (w->ev) event_free(w->ev);
        w->ev = NULL;
        return -1;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "call me soon", which
 * libevent does on its next turn, never from inside this callback. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct curl_loop *l = userp;
    if (timeout_ms < 0) {
        if (event_del(l->timer) != 0) {
            log_error(NULL, "curl_loop: cannot stop the timer");
            return -1;
        }
        return 0;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    if (event_add(l->timer, &tv) != 0) {
        log_error(NULL, "curl_loop: cannot arm the timer");
        return -1;
    }
    return 0;
}

struct curl_loop *curl_loop_new(struct event_base *base)
{
    struct curl_loop *l = xcalloc(1, sizeof(*l));
    l->base = base;
    l->timer = evtimer_new(base, on_timer, l);
    l->multi = curl_multi_init();
    if (!l->timer || !l->multi) {
        log_error(NULL, "curl_loop: cannot create the timer or the multi handle");
        goto fail;
    }
    CURLMcode mc;
    if ((mc = curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, socket_cb)) != CURLM_OK ||
        (mc = curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l)) != CURLM_OK ||
        (mc = curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, timer_cb)) != CURLM_OK ||
        (mc = curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l)) != CURLM_OK ||
        /* keep connections to receivers open for reuse: the default cache
         * (4 x the transfers running) drops them under bursts */
        (mc = curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, 1024L)) != CURLM_OK) {
        log_error(json_pack("{s:s}", "error", curl_multi_strerror(mc)),
                  "curl_loop: cannot set up the multi handle");
        goto fail;
    }
    return l;

fail:
    if (l->multi) {
        mc = curl_multi_cleanup(l->multi);
        if (mc != CURLM_OK)
            log_error(json_pack("{s:s}", "error", curl_multi_strerror(mc)),
                      "curl_loop: curl_multi_cleanup failed");
    }
    if (l->timer) event_free(l->timer);
    free(l);
    return NULL;
}

/* curl_multi_add_handle() only arms the timer (with 0): the transfer starts,
 * and may finish, on a later turn of the loop, so done never runs in here. */
enum sn_err curl_loop_add(struct curl_loop *l, CURL *easy, curl_loop_done_fn done, void *arg)
{
    /* a done callback retrying while the loop is being freed */
    if (l->freeing) return SN_ERR_UNAVAILABLE;
    void *caller_private = NULL;
    CURLcode rc = curl_easy_getinfo(easy, CURLINFO_PRIVATE, &caller_private);
    if (rc != CURLE_OK) {
        log_error(json_pack("{s:s}", "error", curl_easy_strerror(rc)),
                  "curl_loop: cannot read CURLOPT_PRIVATE");
        return SN_ERR_INVAL;
    }
    struct transfer *t = xcalloc(1, sizeof(*t));
    t->easy = easy;
    t->done = done;
    t->arg = arg;
    t->caller_private = caller_private;
    rc = curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    if (rc != CURLE_OK) {
        log_error(json_pack("{s:s}", "error", curl_easy_strerror(rc)),
                  "curl_loop: cannot set CURLOPT_PRIVATE");
        free(t);
        return SN_ERR_INVAL;
    }
    CURLMcode mc = curl_multi_add_handle(l->multi, easy);
    if (mc != CURLM_OK) {
        log_error(json_pack("{s:s}", "error", curl_multi_strerror(mc)),
                  "curl_loop: the multi handle refused a transfer");
        rc = curl_easy_setopt(easy, CURLOPT_PRIVATE, caller_private);
        if (rc != CURLE_OK)
            log_error(json_pack("{s:s}", "error", curl_easy_strerror(rc)),
                      "curl_loop: cannot restore CURLOPT_PRIVATE");
        free(t);
        return SN_ERR_INVAL;
    }
    t->next = l->transfers;
    if (l->transfers) l->transfers->prev = t;
    l->transfers = t;
    l->running++;
    return SN_OK;
}

size_t curl_loop_running(const struct curl_loop *l)
{
    return l->running;
}

void curl_loop_free(struct curl_loop *l)
{
    if (!l || l->freeing) return;
    l->freeing = 1;
    while (l->transfers)
        transfer_finish(l, l->transfers, CURLE_ABORTED_BY_CALLBACK);
    /* called from a done callback: collect_done() still holds l and frees
     * it when that callback returns */
    if (l->dispatching) {
        l->free_pending = 1;
        return;
    }
    loop_destroy(l);
}
