/* What every sink shares: the CloudEvent of a revision and its id. */
#include "sink.h"

#include <stdio.h>
#include <stdlib.h>

#include "sn.h"

void sink_event_id(const json_t *notice, char *buf, size_t len)
{
    snprintf(buf, len, "%s.%lld", json_string_value(json_object_get(notice, "id")),
             (long long)json_integer_value(json_object_get(notice, "revision")));
}

json_t *sink_cloudevent(const json_t *notice)
{
    char id[64];
    sink_event_id(notice, id, sizeof(id));
    const char *subject = json_string_value(json_object_get(notice, "id"));
    const char *time = json_string_value(json_object_get(notice, "issued_at"));
    json_t *ev =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "specversion", "1.0", "id", id, "source",
                  SINK_EVENT_SOURCE, "type", SINK_EVENT_TYPE, "subject", subject ? subject : "",
                  "time", time ? time : "", "datacontenttype", "application/json", "data", notice);
    if (!ev) sn_oom(0);
    return ev;
}

struct deferred {
    struct sink *sink;
    struct delivery *d;
    struct event *ev;
};

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
    struct deferred *df = arg;
    (void)fd;
    (void)what;
    struct sink *s = df->sink;
    struct delivery *d = df->d;
    event_free(df->ev);
    free(df);
    s->done(d, 0, s->done_arg);
}

void sink_fail_soon(struct sink *s, struct delivery *d)
{
    struct deferred *df = xcalloc(1, sizeof(*df));
    df->sink = s;
    df->d = d;
    df->ev = evtimer_new(s->base, on_deferred, df);
    if (!df->ev) sn_oom(0);
    const struct timeval now = {0, 0};
    evtimer_add(df->ev, &now);
}

void delivery_free(struct delivery *d)
{
    if (!d) return;
    free(d->notice_id);
    free(d->channel);
    free(d->target);
    free(d->secrets);
    json_decref(d->notice);
    free(d);
}
