/* TEMPORARY stub until the stats endpoint lands. */
#include "broker.h"
void stats_http_themes(struct http_request *r)
{
    http_reply_problem(r, 501, "Not Implemented", "not yet", NULL);
}
