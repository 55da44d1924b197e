#include "facts.h"

static void copy_label(json_t *fact, const char *label, const json_t *from, const char *key)
{
    json_t *v = json_object_get(from, key);
    if (json_is_string(v)) json_object_set(fact, label, v);
}

static json_t *new_fact(const char *kind, const json_t *incident)
{
    json_t *fact = json_pack("{s:s}", "kind", kind);
    copy_label(fact, "incident_type", incident, "type");
    copy_label(fact, "cause", incident, "cause");
    copy_label(fact, "age_band", incident, "child_age_band");
    return fact;
}

json_t *facts_from_review(const json_t *data)
{
    json_t *facts = json_array();
    const json_t *incident = json_object_get(data, "incident");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(data, "improvement_opportunities"), i, v)
    {
        json_t *fact = new_fact("improvement_opportunity", incident);
        static const char *const labels[] = {"theme", "subtheme", "partner", "seips_domain",
                                             "priority"};
        for (size_t j = 0; j < sizeof(labels) / sizeof(labels[0]); j++)
            copy_label(fact, labels[j], v, labels[j]);
        json_array_append_new(facts, fact);
    }
    json_array_foreach(json_object_get(data, "family_needs"), i, v)
    {
        json_t *fact = new_fact("family_need", incident);
        if (json_is_string(v)) json_object_set(fact, "need", v);
        json_array_append_new(facts, fact);
    }
    return facts;
}
