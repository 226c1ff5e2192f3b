/* End-to-end tests of the `freshet` CLI against a real freshetd: apply, put (JSON lines and CSV,
 * validation that writes nothing, --skip-invalid, exactly-once sources), get --format json,
 * status, sources, and error reporting. Each test starts its own server. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <msgpack.h>

#include "e2e/support/harness.h"

#define VIEWS_JSON FR_SOURCE_DIR "/examples/fraud/views.json"
#define SEC 1000000LL

/* Runs the CLI against srv (NULL = no FRESHET_SERVER); argv is NULL-terminated. */
#define CLI(res, srv, in, ...)                                                                     \
    run_cli((res), (srv), (in), (const char *const[]){__VA_ARGS__, NULL})

static void run_cli(fr_e2e_cli_t *res, const fr_e2e_server_t *srv, const char *in,
                    const char *const *argv)
{
    int rc = fr_e2e_cli_run(srv ? srv->addr : NULL, in, argv, res);
    E2E_ASSERT(rc == 0, "freshet %s did not run to completion", argv[0]);
}

static void expect_ok(const fr_e2e_cli_t *r, const char *what)
{
    E2E_ASSERT(r->exit_code == 0, "%s: exit %d\nstdout: %s\nstderr: %s", what, r->exit_code,
               r->out, r->err);
}

static void expect_contains(const char *text, const char *part, const char *what)
{
    cr_assert(strstr(text, part) != NULL, "%s: \"%s\" not found in:\n%s", what, part, text);
}

static fr_e2e_server_t *start_applied(const char *const *extra)
{
    fr_e2e_server_t *s = fr_e2e_server_start(extra);
    cr_assert_not_null(s, "freshetd did not start");
    fr_e2e_cli_t r;
    CLI(&r, s, NULL, "apply", VIEWS_JSON);
    expect_ok(&r, "apply");
    fr_e2e_cli_fini(&r);
    return s;
}

static void finish(fr_e2e_server_t *s)
{
    cr_assert_eq(fr_e2e_server_stop(s), 0, "freshetd exit status");
    fr_e2e_server_free(s);
}

/* `freshet get --format json` for the comma-separated entities and view; returns an object
 * entity → its parsed line (caller decrefs). Asserts one line per entity. */
static json_t *get_json(const fr_e2e_server_t *s, const char *entities, const char *view,
                        size_t want_lines)
{
    fr_e2e_cli_t r;
    CLI(&r, s, NULL, "get", "--entities", entities, "--view", view, "--format", "json");
    expect_ok(&r, "get --format json");
    json_t *byent = json_object();
    size_t lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *obj = json_loads(line, 0, &err);
        cr_assert_not_null(obj, "line %zu is not JSON (%s): %s", lines + 1, err.text, line);
        cr_assert(json_is_object(obj), "line %zu is not an object", lines + 1);
        json_t *ent = json_object_get(obj, "entity");
        cr_assert(json_is_string(ent), "line %zu: entity is not a string", lines + 1);
        cr_assert(json_is_object(json_object_get(obj, "features")), "line %zu: no features", lines + 1);
        json_object_set_new(byent, json_string_value(ent), obj);
        lines++;
    }
    cr_assert_eq(lines, want_lines, "get printed %zu lines, want %zu:\n%s", lines, want_lines, r.out);
    fr_e2e_cli_fini(&r);
    return byent;
}

/* The cell {"value", "status", "event_timestamp"} of entity/feature; asserts the shape. */
static json_t *cell(json_t *byent, const char *entity, const char *feature)
{
    json_t *line = json_object_get(byent, entity);
    cr_assert_not_null(line, "no line for entity %s", entity);
    json_t *c = json_object_get(json_object_get(line, "features"), feature);
    cr_assert_not_null(c, "entity %s has no feature %s", entity, feature);
    cr_assert(json_object_get(c, "value") && json_object_get(c, "status") &&
                  json_object_get(c, "event_timestamp"),
              "%s/%s: missing keys", entity, feature);
    cr_assert_eq(json_object_size(c), 3, "%s/%s: unexpected keys", entity, feature);
    const char *st = json_string_value(json_object_get(c, "status"));
    cr_assert_not_null(st);
    if (strcmp(st, "PRESENT") != 0)
        cr_assert(json_is_null(json_object_get(c, "value")), "%s/%s: value must be null when %s",
                  entity, feature, st);
    return c;
}

static const char *status_of(json_t *byent, const char *entity, const char *feature)
{
    return json_string_value(json_object_get(cell(byent, entity, feature), "status"));
}

/* Asserts every feature of the listed entities of card_stats is NOT_FOUND. */
static void assert_not_written(const fr_e2e_server_t *s, const char *entities, size_t n)
{
    json_t *g = get_json(s, entities, "card_stats", n);
    const char *key;
    json_t *line;
    json_object_foreach(g, key, line)
    {
        const char *fname;
        json_t *c;
        json_object_foreach(json_object_get(line, "features"), fname, c)
        {
            cr_assert_str_eq(json_string_value(json_object_get(c, "status")), "NOT_FOUND",
                             "%s/%s was written", key, fname);
            cr_assert(json_is_null(json_object_get(c, "event_timestamp")));
        }
    }
    json_decref(g);
}

/* Versions of card_stats according to `freshet status`. */
static long long card_stats_versions(const fr_e2e_server_t *s)
{
    fr_client_t *c = fr_e2e_connect(s);
    E2E_ASSERT(c != NULL, "connect");
    fr_server_status_t st;
    int rc = fr_client_status(c, &st);
    E2E_ASSERT(rc == FR_OK, "status: %s", fr_err_name(rc));
    long long v = -1;
    for (size_t i = 0; i < st.view_count; i++)
        if (!strcmp(st.views[i].name, "card_stats"))
            v = (long long)st.views[i].versions;
    fr_server_status_fini(&st);
    fr_client_free(c);
    return v;
}

Test(cli, apply_is_idempotent, .timeout = 60)
{
    fr_e2e_server_t *s = fr_e2e_server_start(NULL);
    cr_assert_not_null(s);
    fr_e2e_cli_t r;
    CLI(&r, s, NULL, "apply", VIEWS_JSON);
    expect_ok(&r, "first apply");
    expect_contains(r.out, "2 views added", "first apply");
    expect_contains(r.out, "2 entities added", "first apply");
    cr_assert(strstr(r.out, "no change") == NULL, "first apply is a change: %s", r.out);
    fr_e2e_cli_fini(&r);
    CLI(&r, s, NULL, "apply", VIEWS_JSON);
    expect_ok(&r, "second apply");
    expect_contains(r.out, "0 views added", "second apply");
    expect_contains(r.out, "(no change)", "second apply");
    fr_e2e_cli_fini(&r);
    /* a registry that is not JSON is refused with the error name */
    CLI(&r, s, "{\"views\": [", "apply", "-");
    cr_assert_neq(r.exit_code, 0, "a broken registry must fail");
    expect_contains(r.err, "BAD_REGISTRY", "broken registry");
    fr_e2e_cli_fini(&r);
    finish(s);
}

Test(cli, put_json_lines_and_get_json, .timeout = 60)
{
    fr_e2e_server_t *s = start_applied(NULL);
    int64_t now = fr_e2e_now_us(), t1 = now - 120 * SEC, t2 = now - 30 * SEC;
    char ts1[32], ts2[32], input[1024];
    fr_e2e_format_time(t1, ts1);
    fr_e2e_format_time(t2, ts2);
    snprintf(input, sizeof input,
             "{\"card_id\": \"c1\", \"event_timestamp\": \"%s\", \"txn_count_1h\": 5, "
             "\"amount_avg_1h\": 12.5, \"amount_max_1h\": 40.25, \"country\": \"FR\", "
             "\"is_blocked\": false, \"emb\": [0.5, 1, -2, 0.25]}\n"
             "\n"
             "{\"card_id\": \"c2\", \"event_timestamp\": %lld, \"txn_count_1h\": 7, \"country\": null}\n",
             ts1, (long long)t2);
    fr_e2e_cli_t r;
    CLI(&r, s, input, "put", "--view", "card_stats");
    expect_ok(&r, "put json");
    expect_contains(r.out, "rows written: 2", "put json");
    fr_e2e_cli_fini(&r);

    json_t *g = get_json(s, "c1,c2,c9", "card_stats", 3);
    json_t *c = cell(g, "c1", "card_stats:txn_count_1h");
    cr_assert_str_eq(json_string_value(json_object_get(c, "status")), "PRESENT");
    cr_assert_eq(json_integer_value(json_object_get(c, "value")), 5);
    cr_assert_str_eq(json_string_value(json_object_get(c, "event_timestamp")), ts1);
    c = cell(g, "c1", "card_stats:amount_avg_1h");
    cr_assert(json_number_value(json_object_get(c, "value")) == 12.5);
    c = cell(g, "c1", "card_stats:amount_max_1h");
    cr_assert(json_number_value(json_object_get(c, "value")) == 40.25);
    c = cell(g, "c1", "card_stats:country");
    cr_assert_str_eq(json_string_value(json_object_get(c, "value")), "FR");
    c = cell(g, "c1", "card_stats:is_blocked");
    cr_assert(json_is_false(json_object_get(c, "value")));
    c = cell(g, "c1", "card_stats:emb");
    json_t *emb = json_object_get(c, "value");
    cr_assert(json_is_array(emb) && json_array_size(emb) == 4, "emb is an array of 4");
    static const double want_emb[4] = {0.5, 1, -2, 0.25};
    for (size_t i = 0; i < 4; i++)
        cr_assert(json_number_value(json_array_get(emb, i)) == want_emb[i], "emb[%zu]", i);
    /* c2: integer-microsecond timestamp; explicit and implicit nulls */
    c = cell(g, "c2", "card_stats:txn_count_1h");
    cr_assert_str_eq(json_string_value(json_object_get(c, "status")), "PRESENT");
    cr_assert_eq(json_integer_value(json_object_get(c, "value")), 7);
    cr_assert_str_eq(json_string_value(json_object_get(c, "event_timestamp")), ts2);
    cr_assert_str_eq(status_of(g, "c2", "card_stats:country"), "NULL");
    cr_assert_str_eq(status_of(g, "c2", "card_stats:emb"), "NULL");
    cr_assert_str_eq(json_string_value(json_object_get(cell(g, "c2", "card_stats:emb"),
                                                       "event_timestamp")), ts2);
    /* c9 was never written */
    cr_assert_str_eq(status_of(g, "c9", "card_stats:txn_count_1h"), "NOT_FOUND");
    cr_assert(json_is_null(json_object_get(cell(g, "c9", "card_stats:country"), "event_timestamp")));
    json_decref(g);

    /* an old row reads as EXPIRED (ttl 10m), value withheld */
    char old[32];
    fr_e2e_format_time(now - 3600 * SEC, old);
    snprintf(input, sizeof input, "{\"card_id\": \"c3\", \"event_timestamp\": \"%s\", \"txn_count_1h\": 1}\n", old);
    CLI(&r, s, input, "put", "--view", "card_stats");
    expect_ok(&r, "put old");
    fr_e2e_cli_fini(&r);
    g = get_json(s, "c3", "card_stats", 1);
    cr_assert_str_eq(status_of(g, "c3", "card_stats:txn_count_1h"), "EXPIRED");
    cr_assert_str_eq(json_string_value(json_object_get(cell(g, "c3", "card_stats:txn_count_1h"),
                                                       "event_timestamp")), old);
    json_decref(g);
    finish(s);
}

Test(cli, put_csv, .timeout = 60)
{
    fr_e2e_server_t *s = start_applied(NULL);
    char ts[32], input[1024];
    fr_e2e_format_time(fr_e2e_now_us() - 10 * SEC, ts);
    snprintf(input, sizeof input,
             "card_id,event_timestamp,txn_count_1h,amount_avg_1h,country,is_blocked,emb\n"
             "k1,%s,3,2.5,\"Côte, d'Ivoire\",true,\"[1,2,3,4]\"\n"
             "k2,%lld,4,,DE,false,\"[0,0,0,0.5]\"\n",
             ts, (long long)(fr_e2e_now_us() - 20 * SEC));
    fr_e2e_cli_t r;
    CLI(&r, s, input, "put", "--view", "card_stats", "--format", "csv");
    expect_ok(&r, "put csv");
    expect_contains(r.out, "rows written: 2", "put csv");
    fr_e2e_cli_fini(&r);
    json_t *g = get_json(s, "k1,k2", "card_stats", 2);
    json_t *c = cell(g, "k1", "card_stats:country");
    cr_assert_str_eq(json_string_value(json_object_get(c, "value")), "Côte, d'Ivoire");
    cr_assert_str_eq(json_string_value(json_object_get(c, "event_timestamp")), ts);
    cr_assert_eq(json_integer_value(json_object_get(cell(g, "k1", "card_stats:txn_count_1h"), "value")), 3);
    cr_assert(json_is_true(json_object_get(cell(g, "k1", "card_stats:is_blocked"), "value")));
    json_t *emb = json_object_get(cell(g, "k1", "card_stats:emb"), "value");
    cr_assert(json_is_array(emb) && json_array_size(emb) == 4);
    cr_assert(json_number_value(json_array_get(emb, 3)) == 4.0);
    cr_assert_str_eq(status_of(g, "k2", "card_stats:amount_avg_1h"), "NULL", "empty CSV field is null");
    cr_assert_str_eq(status_of(g, "k2", "card_stats:amount_max_1h"), "NULL", "absent column is null");
    cr_assert_str_eq(json_string_value(json_object_get(cell(g, "k2", "card_stats:country"), "value")), "DE");
    json_decref(g);
    finish(s);
}

/* An input with one bad line must fail, name the line and the column, and write nothing. */
static void expect_rejected(const fr_e2e_server_t *s, const char *format, const char *input,
                            const char *line_part, const char *column_part)
{
    long long before = card_stats_versions(s);
    fr_e2e_cli_t r;
    CLI(&r, s, input, "put", "--view", "card_stats", "--format", format);
    cr_assert_neq(r.exit_code, 0, "an invalid line must fail the put:\n%s", r.out);
    expect_contains(r.err, line_part, "stderr names the line");
    expect_contains(r.err, column_part, "stderr names the column");
    fr_e2e_cli_fini(&r);
    cr_assert_eq(card_stats_versions(s), before, "nothing may be written");
}

Test(cli, invalid_line_writes_nothing, .timeout = 90)
{
    fr_e2e_server_t *s = start_applied(NULL);
    char ts[32], in[2048];
    fr_e2e_format_time(fr_e2e_now_us() - 10 * SEC, ts);
    /* unknown column on line 2 */
    snprintf(in, sizeof in,
             "{\"card_id\": \"v1\", \"event_timestamp\": \"%s\", \"txn_count_1h\": 1}\n"
             "{\"card_id\": \"v2\", \"event_timestamp\": \"%s\", \"bogus_col\": 1}\n"
             "{\"card_id\": \"v3\", \"event_timestamp\": \"%s\", \"txn_count_1h\": 3}\n",
             ts, ts, ts);
    expect_rejected(s, "json", in, "line 2", "bogus_col");
    /* unparseable timestamp on line 3 */
    snprintf(in, sizeof in,
             "{\"card_id\": \"v1\", \"event_timestamp\": \"%s\", \"txn_count_1h\": 1}\n"
             "{\"card_id\": \"v2\", \"event_timestamp\": \"%s\", \"txn_count_1h\": 2}\n"
             "{\"card_id\": \"v3\", \"event_timestamp\": \"yesterday-ish\", \"txn_count_1h\": 3}\n",
             ts, ts);
    expect_rejected(s, "json", in, "line 3", "event_timestamp");
    /* wrong type on line 1 */
    snprintf(in, sizeof in,
             "{\"card_id\": \"v1\", \"event_timestamp\": \"%s\", \"txn_count_1h\": \"five\"}\n"
             "{\"card_id\": \"v2\", \"event_timestamp\": \"%s\", \"txn_count_1h\": 2}\n",
             ts, ts);
    expect_rejected(s, "json", in, "line 1", "txn_count_1h");
    /* a float_list of the wrong dimension is refused by the server: still nothing written */
    snprintf(in, sizeof in,
             "{\"card_id\": \"v1\", \"event_timestamp\": \"%s\", \"emb\": [1, 2, 3, 4]}\n"
             "{\"card_id\": \"v2\", \"event_timestamp\": \"%s\", \"emb\": [1, 2]}\n",
             ts, ts);
    expect_rejected(s, "json", in, "line 2", "emb");
    /* CSV: wrong type, bad timestamp, unknown header column */
    snprintf(in, sizeof in, "card_id,event_timestamp,txn_count_1h\nv1,%s,1\nv2,%s,2.5\n", ts, ts);
    expect_rejected(s, "csv", in, "line 3", "txn_count_1h");
    snprintf(in, sizeof in, "card_id,event_timestamp,txn_count_1h\nv1,not-a-time,1\nv2,%s,2\n", ts);
    expect_rejected(s, "csv", in, "line 2", "event_timestamp");
    snprintf(in, sizeof in, "card_id,event_timestamp,nope\nv1,%s,1\n", ts);
    expect_rejected(s, "csv", in, "line 1", "nope");
    assert_not_written(s, "v1,v2,v3", 3);
    finish(s);
}

Test(cli, skip_invalid_writes_the_valid_rows, .timeout = 60)
{
    fr_e2e_server_t *s = start_applied(NULL);
    char ts[32], in[2048];
    fr_e2e_format_time(fr_e2e_now_us() - 10 * SEC, ts);
    snprintf(in, sizeof in,
             "{\"card_id\": \"w1\", \"event_timestamp\": \"%s\", \"txn_count_1h\": 1}\n"
             "{\"card_id\": \"w2\", \"event_timestamp\": \"%s\", \"txn_count_1h\": \"two\"}\n"
             "not json at all\n"
             "{\"card_id\": \"w4\", \"event_timestamp\": \"%s\", \"txn_count_1h\": 4}\n",
             ts, ts, ts);
    fr_e2e_cli_t r;
    CLI(&r, s, in, "put", "--view", "card_stats", "--skip-invalid");
    expect_ok(&r, "put --skip-invalid");
    expect_contains(r.out, "rows written: 2", "skip-invalid summary");
    expect_contains(r.out, "invalid skipped: 2", "skip-invalid summary");
    expect_contains(r.err, "line 2", "skip-invalid report");
    expect_contains(r.err, "txn_count_1h", "skip-invalid report");
    expect_contains(r.err, "line 3", "skip-invalid report");
    fr_e2e_cli_fini(&r);
    json_t *g = get_json(s, "w1,w2,w4", "card_stats", 3);
    cr_assert_str_eq(status_of(g, "w1", "card_stats:txn_count_1h"), "PRESENT");
    cr_assert_str_eq(status_of(g, "w2", "card_stats:txn_count_1h"), "NOT_FOUND");
    cr_assert_str_eq(status_of(g, "w4", "card_stats:txn_count_1h"), "PRESENT");
    cr_assert_eq(json_integer_value(json_object_get(cell(g, "w4", "card_stats:txn_count_1h"), "value")), 4);
    json_decref(g);
    finish(s);
}

Test(cli, source_replay_reports_duplicates, .timeout = 60)
{
    fr_e2e_server_t *s = start_applied(NULL);
    char ts[32], in[4096];
    fr_e2e_format_time(fr_e2e_now_us() - 10 * SEC, ts);
    size_t off = 0;
    for (int i = 0; i < 5; i++)
        off += (size_t)snprintf(in + off, sizeof in - off,
                                "{\"card_id\": \"s%d\", \"event_timestamp\": \"%s\", "
                                "\"txn_count_1h\": %d, \"offset\": %d}\n",
                                i, ts, i * 10, 100 + i);
    fr_e2e_cli_t r;
    CLI(&r, s, in, "put", "--view", "card_stats", "--source", "kafka.cards", "--partition", "3");
    expect_ok(&r, "put with source");
    expect_contains(r.out, "rows written: 5, duplicates skipped: 0", "first run");
    expect_contains(r.out, "position: 104", "first run");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, in, "put", "--view", "card_stats", "--source", "kafka.cards", "--partition", "3");
    expect_ok(&r, "replay");
    expect_contains(r.out, "rows written: 0, duplicates skipped: 5", "replay");
    expect_contains(r.out, "position: 104", "replay");
    fr_e2e_cli_fini(&r);
    /* a line without an offset is invalid when a source is named */
    snprintf(in, sizeof in, "{\"card_id\": \"s9\", \"event_timestamp\": \"%s\", \"txn_count_1h\": 1}\n", ts);
    CLI(&r, s, in, "put", "--view", "card_stats", "--source", "kafka.cards", "--partition", "3");
    cr_assert_neq(r.exit_code, 0);
    expect_contains(r.err, "offset", "missing offset");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, NULL, "sources");
    expect_ok(&r, "sources");
    char *line = strstr(r.out, "kafka.cards");
    cr_assert_not_null(line, "sources lists kafka.cards:\n%s", r.out);
    int part = -1;
    long long pos = -1;
    cr_assert_eq(sscanf(line, "kafka.cards %d %lld", &part, &pos), 2, "sources line: %s", line);
    cr_assert_eq(part, 3);
    cr_assert_eq(pos, 104);
    fr_e2e_cli_fini(&r);
    json_t *g = get_json(s, "s0,s4,s9", "card_stats", 3);
    cr_assert_eq(json_integer_value(json_object_get(cell(g, "s4", "card_stats:txn_count_1h"), "value")), 40);
    cr_assert_str_eq(status_of(g, "s9", "card_stats:txn_count_1h"), "NOT_FOUND");
    json_decref(g);
    finish(s);
}

Test(cli, status_shows_durability_and_views, .timeout = 60)
{
    const char *args[] = {"--durability", "async", NULL};
    fr_e2e_server_t *s = start_applied(args);
    char ts[32], in[512];
    fr_e2e_format_time(fr_e2e_now_us() - 10 * SEC, ts);
    snprintf(in, sizeof in, "{\"merchant_id\": 77, \"event_timestamp\": \"%s\", \"txn_count_24h\": 9}\n", ts);
    fr_e2e_cli_t r;
    CLI(&r, s, in, "put", "--view", "merchant_risk");
    expect_ok(&r, "put merchant (integer entity id)");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, NULL, "status");
    expect_ok(&r, "status");
    expect_contains(r.out, "durability  async", "status");
    char *cs = strstr(r.out, "card_stats");
    char *mr = strstr(r.out, "merchant_risk");
    cr_assert(cs && mr, "status lists both views:\n%s", r.out);
    long long versions = -1;
    cr_assert_eq(sscanf(mr, "merchant_risk %lld", &versions), 1);
    cr_assert_eq(versions, 1, "merchant_risk versions in:\n%s", r.out);
    cr_assert_eq(sscanf(cs, "card_stats %lld", &versions), 1);
    cr_assert_eq(versions, 0);
    fr_e2e_cli_fini(&r);
    json_t *g = get_json(s, "77", "merchant_risk", 1);
    cr_assert_eq(json_integer_value(json_object_get(cell(g, "77", "merchant_risk:txn_count_24h"), "value")), 9);
    json_decref(g);
    finish(s);
    /* and the default mode */
    s = start_applied(NULL);
    CLI(&r, s, NULL, "status");
    expect_ok(&r, "status");
    expect_contains(r.out, "durability  sync", "status");
    fr_e2e_cli_fini(&r);
    finish(s);
}

Test(cli, errors_name_the_error_and_exit_non_zero, .timeout = 60)
{
    fr_e2e_server_t *s = start_applied(NULL);
    fr_e2e_cli_t r;
    CLI(&r, s, NULL, "get", "--entities", "a", "--view", "no_such_view");
    cr_assert_neq(r.exit_code, 0);
    expect_contains(r.err, "UNKNOWN_VIEW", "get unknown view");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, NULL, "get", "--entities", "a", "--features", "card_stats:nope", "--format", "json");
    cr_assert_neq(r.exit_code, 0);
    expect_contains(r.err, "UNKNOWN_FEATURE", "get unknown feature");
    cr_assert_str_eq(r.out, "", "nothing on stdout on error");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, "{\"x\": 1}\n", "put", "--view", "no_such_view");
    cr_assert_neq(r.exit_code, 0);
    expect_contains(r.err, "UNKNOWN_VIEW", "put unknown view");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, NULL, "frobnicate");
    cr_assert_eq(r.exit_code, 2, "unknown command is a usage error");
    fr_e2e_cli_fini(&r);
    /* the server address from --server wins over FRESHET_SERVER */
    CLI(&r, NULL, NULL, "--server", s->addr, "status");
    expect_ok(&r, "status --server");
    fr_e2e_cli_fini(&r);
    /* unreachable server: the address of a server that has stopped */
    char gone[128];
    snprintf(gone, sizeof gone, "%s", s->addr);
    finish(s);
    const char *const cmds[3][6] = {{"status", NULL},
                                    {"sources", NULL},
                                    {"get", "--entities", "a", "--view", "card_stats", NULL}};
    for (int i = 0; i < 3; i++) {
        int rc = fr_e2e_cli_run(gone, NULL, cmds[i], &r);
        cr_assert_eq(rc, 0);
        cr_assert_eq(r.exit_code, 1, "%s against a dead server: exit %d", cmds[i][0], r.exit_code);
        expect_contains(r.err, "IO", "unreachable server");
        expect_contains(r.err, gone, "the message names the address");
        fr_e2e_cli_fini(&r);
    }
}

/* Regression: a bare view name in --features printed one header column for the whole view while
 * each row had one value per feature. */
/* A server with one card_stats row for c1, and a labels file in its directory. */
static fr_e2e_server_t *start_with_labels(const char *label_rows, char labels[256])
{
    fr_e2e_server_t *s = start_applied(NULL);
    fr_e2e_cli_t r;
    CLI(&r, s, "{\"card_id\":\"c1\",\"event_timestamp\":1000,\"txn_count_1h\":4}\n", "put", "--view",
        "card_stats");
    expect_ok(&r, "put");
    fr_e2e_cli_fini(&r);
    snprintf(labels, 256, "%s/labels.csv", s->dir);
    FILE *f = fopen(labels, "w");
    cr_assert_not_null(f);
    fputs(label_rows, f);
    fclose(f);
    return s;
}

Test(cli, export_header_expands_a_bare_view_name, .timeout = 60)
{
    char labels[256];
    fr_e2e_server_t *s = start_with_labels("card_id,event_timestamp\nc1,2000\n", labels);
    fr_e2e_cli_t r;
    CLI(&r, s, NULL, "export", "pit", "--labels", labels, "--features", "card_stats");
    expect_ok(&r, "export pit of a whole view");
    char *nl = strchr(r.out, '\n');
    cr_assert_not_null(nl, "no header line: %s", r.out);
    size_t header_cols = 1, row_cols = 1;
    for (char *p = r.out; p < nl; p++)
        header_cols += *p == ',';
    for (char *p = nl + 1; *p && *p != '\n'; p++)
        row_cols += *p == ',';
    cr_assert_eq(header_cols, row_cols, "header has %zu columns, the row %zu:\n%s", header_cols, row_cols,
                 r.out);
    expect_contains(r.out, "card_stats:txn_count_1h", "expanded feature name in the header");
    fr_e2e_cli_fini(&r);
    finish(s);
}

/* Regression: `-o /dev/null` wrote /dev/null.partial and renamed it over /dev/null, replacing the
 * device node with a regular file. A device or a pipe given as OUT is written in place; here a
 * FIFO (read by a child process) stands in for /dev/null. */
static void *drain_fifo(void *path)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    char buf[4096];
    size_t got;
    while (f && (got = fread(buf, 1, sizeof buf, f)) > 0)
        n += got;
    if (f)
        fclose(f);
    return (void *)n;
}

Test(cli, export_to_a_fifo_writes_through_it_and_leaves_it_a_fifo, .timeout = 60)
{
    char labels[256], fifo[256], partial[300];
    fr_e2e_server_t *s = start_with_labels("card_id,event_timestamp\nc1,2000\nc2,2000\n", labels);
    fr_e2e_cli_t r;
    snprintf(fifo, sizeof fifo, "%s/out.fifo", s->dir);
    snprintf(partial, sizeof partial, "%s.partial", fifo);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    pthread_t reader;
    cr_assert_eq(pthread_create(&reader, NULL, drain_fifo, fifo), 0);
    CLI(&r, s, NULL, "export", "pit", "--labels", labels, "--features", "card_stats:txn_count_1h",
        "-o", fifo);
    expect_ok(&r, "export pit to a fifo");
    fr_e2e_cli_fini(&r);
    void *bytes;
    pthread_join(reader, &bytes);
    cr_assert_gt((size_t)bytes, strlen("card_id,event_timestamp"), "the export came through");
    struct stat st;
    cr_assert_eq(stat(fifo, &st), 0);
    cr_assert(S_ISFIFO(st.st_mode), "out.fifo is no longer a FIFO (mode %o)", st.st_mode);
    cr_assert_neq(access(partial, F_OK), 0, "no out.fifo.partial left behind");
    finish(s);
}

/* ---- label and put input edge cases (regressions from an audit of the CLI) ---- */

/* JSONL labels from a pipe: the first line was read for its keys and then "rewound", which a
 * pipe cannot do, so the first label row was silently lost. An integer id is taken as its
 * decimal text, as `put` does. */
Test(cli, export_reads_jsonl_labels_from_a_pipe_starting_at_the_first_row, .timeout = 60)
{
    char labels[256], in[512];
    fr_e2e_server_t *s = start_with_labels("", labels);
    /* recent times: a row from 1970 is past the view's retention, and the sweeper may take it */
    long long now = (long long)fr_e2e_now_us();
    snprintf(in, sizeof in,
             "{\"card_id\":\"c1\",\"event_timestamp\":%lld,\"txn_count_1h\":4}\n"
             "{\"card_id\":123,\"event_timestamp\":%lld,\"txn_count_1h\":9}\n",
             now - 5 * SEC, now - 5 * SEC);
    fr_e2e_cli_t r;
    CLI(&r, s, in, "put", "--view", "card_stats");
    expect_ok(&r, "put an integer id");
    fr_e2e_cli_fini(&r);
    snprintf(in, sizeof in,
             "{\"card_id\":\"c1\",\"event_timestamp\":%lld,\"n\":1}\n"
             "{\"card_id\":123,\"event_timestamp\":%lld,\"n\":2}\n",
             now, now);
    CLI(&r, s, in, "export", "pit", "--labels", "/dev/stdin", "--features", "card_stats:txn_count_1h",
        "--format", "jsonl");
    expect_ok(&r, "export pit from a pipe");
    json_error_t err;
    char *second = strchr(r.out, '\n');
    cr_assert_not_null(second, "fewer than two rows:\n%s", r.out);
    *second++ = 0;
    json_t *a = json_loads(r.out, 0, &err), *b = json_loads(second, JSON_DISABLE_EOF_CHECK, &err);
    cr_assert(a && b, "two JSON rows expected:\n%s\n%s", r.out, second);
    cr_assert_eq(json_integer_value(json_object_get(a, "n")), 1, "the first label row comes first");
    cr_assert_eq(json_integer_value(json_object_get(a, "card_stats:txn_count_1h")), 4);
    cr_assert_eq(json_integer_value(json_object_get(b, "card_stats:txn_count_1h")), 9,
                 "integer id 123 finds the row put under 123");
    expect_contains(r.err, "2 rows", "summary");
    json_decref(a);
    json_decref(b);
    fr_e2e_cli_fini(&r);
    finish(s);
}

/* JSONL pass-through values come out as the same JSON values: null stays null (msgpack: nil, not
 * the string "null"), nested values stay nested, and decimals keep their shortest spelling. */
Test(cli, export_passes_jsonl_label_values_through_unchanged, .timeout = 60)
{
    char labels[256];
    fr_e2e_server_t *s = start_with_labels("", labels);
    const char *in = "{\"card_id\":\"c1\",\"event_timestamp\":2000,\"y\":null,\"o\":{\"a\":[1,2.5]},"
                     "\"w\":0.1,\"r\":1.0,\"big\":1e300}\n";
    fr_e2e_cli_t r;
    CLI(&r, s, in, "export", "pit", "--labels", "/dev/stdin", "--features",
        "card_stats:txn_count_1h", "--format", "jsonl");
    expect_ok(&r, "export jsonl");
    expect_contains(r.out, "\"y\": null", "null passes through");
    expect_contains(r.out, "\"o\": {\"a\":[1,2.5]}", "nested values pass through");
    expect_contains(r.out, "\"w\": 0.1,", "0.1 is not respelled");
    expect_contains(r.out, "\"r\": 1.0,", "a real stays a real");
    expect_contains(r.out, "\"big\": 1e+300", "1e300 is not respelled");
    fr_e2e_cli_fini(&r);
    char out[300];
    snprintf(out, sizeof out, "%s/pit.msgpack", s->dir);
    CLI(&r, s, in, "export", "pit", "--labels", "/dev/stdin", "--features",
        "card_stats:txn_count_1h", "--format", "msgpack", "-o", out);
    expect_ok(&r, "export msgpack");
    fr_e2e_cli_fini(&r);
    /* one map per row; inspected as JSON through jansson by a small msgpack walk */
    FILE *f = fopen(out, "rb");
    cr_assert_not_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, buf, n, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(u.data.type, MSGPACK_OBJECT_MAP);
    int seen = 0;
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        msgpack_object k = u.data.via.map.ptr[i].key, v = u.data.via.map.ptr[i].val;
        if (k.type != MSGPACK_OBJECT_STR)
            continue;
        if (k.via.str.size == 1 && k.via.str.ptr[0] == 'y') {
            cr_assert_eq(v.type, MSGPACK_OBJECT_NIL, "y: null is nil, type %d", v.type);
            seen++;
        } else if (k.via.str.size == 1 && k.via.str.ptr[0] == 'o') {
            cr_assert_eq(v.type, MSGPACK_OBJECT_MAP, "o is a map, type %d", v.type);
            msgpack_object arr = v.via.map.ptr[0].val;
            cr_assert_eq(arr.type, MSGPACK_OBJECT_ARRAY);
            cr_assert_eq(arr.via.array.size, 2);
            cr_assert(arr.via.array.ptr[1].via.f64 == 2.5);
            seen++;
        }
    }
    cr_assert_eq(seen, 2, "both y and o are in the row");
    msgpack_unpacked_destroy(&u);
    finish(s);
}

/* CSV labels as spreadsheets and the export itself write them: a UTF-8 byte order mark before
 * the header, and a quoted field holding a line break. An empty entity id is refused by line and
 * column (it was exported as NOT_FOUND). */
Test(cli, export_csv_labels_take_a_bom_and_line_breaks_in_quotes, .timeout = 60)
{
    char labels[256], in[512], want[256];
    long long now = (long long)fr_e2e_now_us();
    snprintf(in, sizeof in,
             "\xef\xbb\xbf" "card_id,event_timestamp,note\nc1,%lld,\"two\nlines, one field\"\n"
             "c1,%lld,plain\n",
             now, now);
    fr_e2e_server_t *s = start_with_labels(in, labels);
    fr_e2e_cli_t r;
    snprintf(in, sizeof in, "{\"card_id\":\"c1\",\"event_timestamp\":%lld,\"txn_count_1h\":4}\n",
             now - 5 * SEC); /* recent: a 1970 row is past retention, and the sweeper may take it */
    CLI(&r, s, in, "put", "--view", "card_stats");
    expect_ok(&r, "put");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, NULL, "export", "pit", "--labels", labels, "--features", "card_stats:txn_count_1h");
    expect_ok(&r, "export with a BOM and a multi-line field");
    expect_contains(r.out, "card_id,event_timestamp,note,card_stats:txn_count_1h\n", "header");
    snprintf(want, sizeof want, "c1,%lld,\"two\nlines, one field\",4\n", now);
    expect_contains(r.out, want, "the multi-line field, quoted");
    snprintf(want, sizeof want, "c1,%lld,plain,4\n", now);
    expect_contains(r.out, want, "the row after it");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, "card_id,event_timestamp\nc1,2000\n,2000\n", "export", "pit", "--labels",
        "/dev/stdin", "--features", "card_stats:txn_count_1h");
    cr_assert_neq(r.exit_code, 0, "an empty id must fail the export:\n%s", r.out);
    expect_contains(r.err, "labels line 3: column \"card_id\": empty entity id", "the error");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, "card_id,event_timestamp,note\nc1,2000,\"never closed\n", "export", "pit",
        "--labels", "/dev/stdin", "--features", "card_stats:txn_count_1h");
    cr_assert_neq(r.exit_code, 0);
    expect_contains(r.err, "labels line 2: a quoted field is not closed", "the error");
    fr_e2e_cli_fini(&r);
    finish(s);
}

/* `put` refused nothing that strtod/strtof took: "nan", "inf", hex and values past the type's
 * range were stored (as NaN or infinity). Now each is refused by line and column, and nothing of
 * the input is written. A CSV record may span lines inside quotes, and a BOM is skipped. */
Test(cli, put_refuses_numbers_that_are_not_finite_decimals, .timeout = 90)
{
    fr_e2e_server_t *s = start_applied(NULL);
    const char *bad[] = {"nan", "inf", "0x10", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char in[512];
        snprintf(in, sizeof in, "card_id,event_timestamp,amount_avg_1h\nn1,1000,1.5\nn2,1000,%s\n",
                 bad[i]);
        expect_rejected(s, "csv", in, "line 3", "amount_avg_1h");
    }
    expect_rejected(s, "csv", "card_id,event_timestamp,amount_max_1h\nn3,1000,1e50\n", "line 2",
                    "amount_max_1h");
    expect_rejected(s, "json", "{\"card_id\":\"n4\",\"event_timestamp\":1000,\"amount_max_1h\":1e50}\n",
                    "line 1", "amount_max_1h");
    expect_rejected(s, "json", "{\"card_id\":\"n5\",\"event_timestamp\":1000,\"emb\":[1,1e50]}\n",
                    "line 1", "emb");
    fr_e2e_cli_t r;
    char in[256];
    snprintf(in, sizeof in,
             "\xef\xbb\xbf" "card_id,event_timestamp,country,amount_max_1h\nm1,%lld,\"multi\nline\",1e38\n",
             (long long)fr_e2e_now_us());
    CLI(&r, s, in, "put", "--view", "card_stats", "--format", "csv");
    expect_ok(&r, "put with a BOM and a multi-line field");
    fr_e2e_cli_fini(&r);
    json_t *g = get_json(s, "m1", "card_stats", 1);
    cr_assert_str_eq(json_string_value(json_object_get(cell(g, "m1", "card_stats:country"), "value")),
                     "multi\nline");
    json_decref(g);
    finish(s);
}

/* JSON output is valid UTF-8 whatever bytes a string holds: a byte that is not part of a UTF-8
 * sequence is written as U+FFFD (it was copied raw, and JSON parsers refused the line). */
Test(cli, get_json_output_is_valid_utf8_for_any_stored_bytes, .timeout = 60)
{
    fr_e2e_server_t *s = start_applied(NULL);
    fr_e2e_cli_t r;
    char in[128];
    snprintf(in, sizeof in, "card_id,event_timestamp,country\nu8,%lld,ab\xff" "cd\xc3\xa9\n",
             (long long)fr_e2e_now_us());
    CLI(&r, s, in, "put", "--view", "card_stats", "--format", "csv");
    expect_ok(&r, "put a string with a stray byte");
    fr_e2e_cli_fini(&r);
    json_t *g = get_json(s, "u8", "card_stats", 1); /* asserts every line parses */
    cr_assert_str_eq(json_string_value(json_object_get(cell(g, "u8", "card_stats:country"), "value")),
                     "ab\xef\xbf\xbd" "cd\xc3\xa9", "U+FFFD for the stray byte, é kept");
    json_decref(g);
    finish(s);
}

/* Regression: `export pit --include-expired` was accepted and then not sent, so expired cells
 * stayed empty (the snapshot export and the Python client did send it). */
Test(cli, export_pit_include_expired_writes_expired_values, .timeout = 60)
{
    char labels[256], in[256];
    long long now = (long long)fr_e2e_now_us();
    snprintf(in, sizeof in, "card_id,event_timestamp\nc9,%lld\n", now);
    fr_e2e_server_t *s = start_with_labels(in, labels);
    fr_e2e_cli_t r;
    snprintf(in, sizeof in, "{\"card_id\":\"c9\",\"event_timestamp\":%lld,\"txn_count_1h\":6}\n",
             now - 20 * 60 * SEC); /* past card_stats' 10 min ttl at the label time */
    CLI(&r, s, in, "put", "--view", "card_stats");
    expect_ok(&r, "put");
    fr_e2e_cli_fini(&r);
    char want[128];
    CLI(&r, s, NULL, "export", "pit", "--labels", labels, "--features", "card_stats:txn_count_1h",
        "--with-status");
    expect_ok(&r, "export without --include-expired");
    snprintf(want, sizeof want, "c9,%lld,,EXPIRED\n", now);
    expect_contains(r.out, want, "an expired cell is empty");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, NULL, "export", "pit", "--labels", labels, "--features", "card_stats:txn_count_1h",
        "--with-status", "--include-expired");
    expect_ok(&r, "export with --include-expired");
    snprintf(want, sizeof want, "c9,%lld,6,EXPIRED\n", now);
    expect_contains(r.out, want, "the expired value, still EXPIRED");
    fr_e2e_cli_fini(&r);
    finish(s);
}

/* Regression: CSV exports and `get` tables printed a stored infinity as `null`, which
 * pandas.read_csv turns into NaN: training saw NaN where an online read returns inf. CSV and
 * tables now write nan/inf/-inf; JSON, which has neither, keeps null. */
Test(cli, csv_and_table_output_keep_stored_infinities, .timeout = 60)
{
    char labels[256], in[256];
    long long now = (long long)fr_e2e_now_us();
    snprintf(in, sizeof in, "card_id,event_timestamp\ncinf,%lld\n", now);
    fr_e2e_server_t *s = start_with_labels(in, labels);
    fr_client_t *c = NULL;
    cr_assert_eq(fr_client_connect(s->addr, 5000, &c), FR_OK);
    fr_value_t v[3] = {{.type = FR_TYPE_INT64, .u.i64 = 1},
                       {.type = FR_TYPE_DOUBLE, .u.f64 = INFINITY},
                       {.type = FR_TYPE_FLOAT, .u.f32 = -INFINITY}};
    fr_put_row_t row = {.view = "card_stats", .entity = "cinf", .event_ts_us = now - SEC,
                        .values = v, .value_count = 3};
    fr_put_result_t pr;
    cr_assert_eq(fr_client_put(c, NULL, 0, &row, 1, &pr), FR_OK, "%s", fr_client_error(c));
    fr_client_free(c);
    fr_e2e_cli_t r;
    CLI(&r, s, NULL, "export", "pit", "--labels", labels, "--features",
        "card_stats:amount_avg_1h,card_stats:amount_max_1h");
    expect_ok(&r, "export");
    char want[128];
    snprintf(want, sizeof want, "cinf,%lld,inf,-inf\n", now);
    expect_contains(r.out, want, "CSV keeps the infinities");
    fr_e2e_cli_fini(&r);
    CLI(&r, s, NULL, "get", "--view", "card_stats", "--entities", "cinf");
    expect_ok(&r, "get table");
    expect_contains(r.out, " inf\n", "the table shows inf");
    expect_contains(r.out, " -inf\n", "the table shows -inf");
    fr_e2e_cli_fini(&r);
    json_t *g = get_json(s, "cinf", "card_stats", 1);
    cr_assert(json_is_null(json_object_get(cell(g, "cinf", "card_stats:amount_avg_1h"), "value")),
              "JSON has no infinity: null");
    json_decref(g);
    finish(s);
}

/* Regression: numeric flags were read with strtoul/atoi, so "--partition 1x" wrote to partition
 * 1, "--partition x" to 0 and "--chunk -1" asked for 2^64-1 rows a chunk; each is now a usage
 * error naming the flag, before anything connects (the server address is one nothing listens on). */
Test(cli, regression_numeric_flags_refuse_what_is_not_a_number_in_range, .timeout = 60)
{
    static const char *const cases[][10] = {
        {"put", "--view", "v", "--partition", "1x", NULL},
        {"put", "--view", "v", "--partition", "x", NULL},
        {"put", "--view", "v", "--batch", "-5", NULL},
        {"put", "--view", "v", "--nats", "nats://127.0.0.1:1", "--partition-count", "65537", NULL},
        {"put", "--view", "v", "--nats", "nats://127.0.0.1:1", "--replicas", "three", NULL},
        {"export", "snapshot", "--view", "v", "--chunk", "-1", NULL},
        {"export", "snapshot", "--view", "v", "--connections", "2x", NULL},
        {"export", "snapshot", "--view", "v", "--connections", "17", NULL},
        {"stream", "create", "--nats", "nats://127.0.0.1:1", "--replicas", " 3", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *flag = NULL, *value = NULL;
        for (int k = 0; cases[i][k]; k++)
            if (cases[i][k + 1] && !cases[i][k + 2]) {
                flag = cases[i][k];
                value = cases[i][k + 1];
            }
        fr_e2e_cli_t r;
        cr_assert_eq(fr_e2e_cli_run("127.0.0.1:1", NULL, cases[i], &r), 0);
        cr_assert_eq(r.exit_code, 2, "%s %s %s: exit %d\nstderr: %s", cases[i][0], flag, value,
                     r.exit_code, r.err);
        char want[96];
        snprintf(want, sizeof want, "%s: \"%s\" is not a whole number", flag, value);
        expect_contains(r.err, want, flag);
        fr_e2e_cli_fini(&r);
    }
}
