/* libfreshet administration calls: status, stream positions, and the cached registry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

typedef struct {
    fr_view_status_t *views;
    size_t count, cap;
    int oom;
} vs_dec_t;

static bool dec_vs_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    vs_dec_t *d = *arg;
    freshet_ViewStatus vs = freshet_ViewStatus_init_zero;
    if (!pb_decode(stream, freshet_ViewStatus_fields, &vs))
        return false;
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        fr_view_status_t *p = realloc(d->views, cap * sizeof *p);
        if (!p)
            return d->oom = 1, false;
        d->views = p;
        d->cap = cap;
    }
    fr_view_status_t *v = &d->views[d->count++];
    snprintf(v->name, sizeof v->name, "%s", vs.name);
    v->versions = vs.versions;
    v->newest_event_ts_us = vs.newest_event_ts_us;
    return true;
}

typedef struct {
    char *json;
    size_t len;
} json_dec_t;

static bool dec_json_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    json_dec_t *j = *arg;
    const uint8_t *p;
    size_t n;
    if (!fr_pb_take_bytes(stream, &p, &n))
        return false;
    free(j->json);
    j->json = malloc(n + 1);
    if (!j->json)
        return false;
    memcpy(j->json, p, n);
    j->json[n] = 0;
    j->len = n;
    return true;
}

static int status_call(fr_client_t *c, fr_server_status_t *out, json_dec_t *json)
{
    freshet_StatusRequest req = freshet_StatusRequest_init_zero;
    freshet_StatusResponse resp = freshet_StatusResponse_init_zero;
    vs_dec_t d = {0};
    resp.views.funcs.decode = dec_vs_cb;
    resp.views.arg = &d;
    resp.registry_json.funcs.decode = dec_json_cb;
    resp.registry_json.arg = json;
    json_dec_t cfg = {0};
    resp.config.funcs.decode = dec_json_cb;
    resp.config.arg = &cfg;
    int rc = fr_client_call(c, freshet_Op_OP_STATUS, freshet_StatusRequest_fields, &req,
                            freshet_StatusResponse_fields, &resp);
    if (rc == FR_OK)
        rc = fr_client_check(c, resp.has_code, resp.code, resp.message);
    if (rc != FR_OK || !out) {
        free(d.views);
        free(cfg.json);
        return rc;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->version, sizeof out->version, "%s", resp.version);
    snprintf(out->durability, sizeof out->durability, "%s", resp.durability);
    out->map_size = resp.map_size;
    out->map_used = resp.map_used;
    out->last_txn = resp.last_txn;
    out->write_seq = resp.write_seq;
    out->server_time_us = resp.server_time_us;
    out->views = d.views;
    out->view_count = d.count;
    out->config = cfg.json;
    return FR_OK;
}

int fr_client_status(fr_client_t *c, fr_server_status_t *out)
{
    json_dec_t json = {0};
    int rc = status_call(c, out, &json);
    free(json.json);
    return rc;
}

void fr_server_status_fini(fr_server_status_t *st)
{
    free(st->views);
    free(st->config);
    st->views = NULL;
    st->config = NULL;
    st->view_count = 0;
}

typedef struct {
    fr_source_pos_t *pos;
    size_t count, cap;
} src_dec_t;

static bool dec_src_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    src_dec_t *d = *arg;
    freshet_SourcePosition sp = freshet_SourcePosition_init_zero;
    if (!pb_decode(stream, freshet_SourcePosition_fields, &sp))
        return false;
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        fr_source_pos_t *p = realloc(d->pos, cap * sizeof *p);
        if (!p)
            return false;
        d->pos = p;
        d->cap = cap;
    }
    fr_source_pos_t *p = &d->pos[d->count++];
    snprintf(p->source, sizeof p->source, "%s", sp.source);
    p->partition = sp.partition;
    p->offset = sp.offset;
    p->lag = sp.has_lag ? sp.lag : -1;
    p->has_lag = sp.has_lag;
    return true;
}

int fr_client_sources(fr_client_t *c, fr_source_pos_t **out, size_t *count)
{
    freshet_SourcesRequest req = freshet_SourcesRequest_init_zero;
    freshet_SourcesResponse resp = freshet_SourcesResponse_init_zero;
    src_dec_t d = {0};
    resp.positions.funcs.decode = dec_src_cb;
    resp.positions.arg = &d;
    int rc = fr_client_call(c, freshet_Op_OP_SOURCES, freshet_SourcesRequest_fields, &req,
                            freshet_SourcesResponse_fields, &resp);
    if (rc == FR_OK)
        rc = fr_client_check(c, resp.has_code, resp.code, resp.message);
    if (rc != FR_OK) {
        free(d.pos);
        return rc;
    }
    *out = d.pos;
    *count = d.count;
    return FR_OK;
}

void fr_client_schema_clear(fr_client_t *c)
{
    fr_registry_release(c->registry);
    c->registry = NULL;
    free(c->feat_names);
    free(c->feat_types);
    c->feat_names = NULL;
    c->feat_types = NULL;
}

int fr_client_refresh(fr_client_t *c)
{
    json_dec_t json = {0};
    fr_server_status_t st;
    int rc = status_call(c, &st, &json);
    if (rc != FR_OK) {
        free(json.json);
        return rc;
    }
    fr_server_status_fini(&st);
    fr_client_schema_clear(c);
    const char *why = "";
    rc = json.json ? fr_registry_parse(json.json, json.len, &c->registry, &why) : FR_E_BAD_REGISTRY;
    free(json.json);
    if (rc != FR_OK)
        return fr_client_failf(c, rc, "server registry unreadable: %s", why);
    return FR_OK;
}

static int find_view(fr_client_t *c, const char *view, const fr_view_def_t **out)
{
    if (!c->registry) {
        int rc = fr_client_refresh(c);
        if (rc != FR_OK)
            return rc;
    }
    *out = fr_registry_view(c->registry, view);
    if (!*out) {
        /* maybe applied since the cache was filled */
        int rc = fr_client_refresh(c);
        if (rc != FR_OK)
            return rc;
        *out = fr_registry_view(c->registry, view);
    }
    if (!*out)
        return fr_client_failf(c, FR_E_UNKNOWN_VIEW, "unknown view \"%s\"", view);
    return FR_OK;
}

int fr_client_view_features(fr_client_t *c, const char *view, size_t *count,
                            const char *const **names, const fr_type_t **types)
{
    const fr_view_def_t *v;
    int rc = find_view(c, view, &v);
    if (rc != FR_OK)
        return rc;
    free(c->feat_names);
    free(c->feat_types);
    c->feat_names = calloc(v->feature_count + 1, sizeof *c->feat_names);
    c->feat_types = calloc(v->feature_count + 1, sizeof *c->feat_types);
    if (!c->feat_names || !c->feat_types)
        return fr_client_failf(c, FR_E_NOMEM, "no memory");
    for (uint32_t i = 0; i < v->feature_count; i++) {
        c->feat_names[i] = v->features[i].name;
        c->feat_types[i] = v->features[i].type;
    }
    *count = v->feature_count;
    *names = c->feat_names;
    *types = c->feat_types;
    return FR_OK;
}

int fr_client_view_join_key(fr_client_t *c, const char *view, const char **join_key)
{
    const fr_view_def_t *v;
    int rc = find_view(c, view, &v);
    if (rc == FR_OK)
        *join_key = v->join_key;
    return rc;
}

int fr_client_backup(fr_client_t *c, const char *dest, bool compact, uint64_t *bytes,
                     uint64_t *duration_us)
{
    freshet_BackupRequest req = freshet_BackupRequest_init_zero;
    if (!dest || strlen(dest) >= sizeof req.dest)
        return fr_client_failf(c, FR_E_BAD_ARG, "dest: empty or longer than %zu bytes",
                               sizeof req.dest - 1);
    req.has_dest = req.has_compact = true;
    strcpy(req.dest, dest);
    req.compact = compact;
    freshet_BackupResponse resp = freshet_BackupResponse_init_zero;
    int rc = fr_client_call(c, freshet_Op_OP_BACKUP, freshet_BackupRequest_fields, &req,
                            freshet_BackupResponse_fields, &resp);
    if (rc == FR_OK)
        rc = fr_client_check(c, resp.has_code, resp.code, resp.message);
    if (rc == FR_OK) {
        if (bytes)
            *bytes = resp.bytes;
        if (duration_us)
            *duration_us = resp.duration_us;
    }
    return rc;
}
