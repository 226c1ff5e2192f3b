/* The NATS server list parser shared by freshetd's `ingest` check and libfreshet's publisher. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/nats_list.h"

Test(nats_list, splits_a_comma_separated_list_with_blanks_around_the_commas)
{
    fr_nats_list_t l;
    char why[256] = "";
    cr_assert(fr_nats_list_parse(" nats://a:1 ,nats://10.0.0.2:4222,\tnats://[::1]:65535 ", &l, why,
                                 sizeof why),
              "%s", why);
    cr_assert_eq(l.count, 3);
    cr_assert_str_eq(l.url[0], "nats://a:1");
    cr_assert_str_eq(l.url[1], "nats://10.0.0.2:4222");
    cr_assert_str_eq(l.url[2], "nats://[::1]:65535");
}

/* Regression: the connector split on blanks as well as commas, skipped empty elements, dropped
 * every URL after the 16th and cut the list at 1023 bytes, all silently, while the config check
 * refused some of those lists: a publisher given one of them connected to fewer servers than it
 * was told. The one parser now refuses each of them and names what is wrong. */
Test(nats_list, refuses_what_the_connector_used_to_take_silently)
{
    static const struct {
        const char *list, *named;
    } bad[] = {
        {"nats://a:1 nats://b:2", "nats://a:1"}, /* blank-separated: not a list of ours */
        {"nats://a:1,,nats://b:2", "element 2 is empty"},
        {"nats://a:1,", "element 2 is empty"},
        {"", "element 1 is empty"},
        {"nats://a:1,nats://b", "nats://b"},
        {"nats://a:0", "nats://a:0"},
        {"nats://a:65536", "nats://a:65536"},
        {"tls://a:1", "tls://a:1"},
        {"nats://[::1:4222", "nats://[::1:4222"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fr_nats_list_t l;
        char why[256] = "";
        cr_assert(!fr_nats_list_parse(bad[i].list, &l, why, sizeof why), "accepted \"%s\"",
                  bad[i].list);
        cr_assert(strstr(why, bad[i].named) && strstr(why, "nats://HOST:PORT"), "\"%s\": %s",
                  bad[i].list, why);
    }
    char many[FR_NATS_LIST_MAX];
    size_t n = 0;
    for (int i = 0; i < FR_NATS_URLS_MAX + 1; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%snats://h%d:1", i ? "," : "", i);
    fr_nats_list_t l;
    char why[256] = "";
    cr_assert(!fr_nats_list_parse(many, &l, why, sizeof why), "17 URLs accepted");
    cr_assert(strstr(why, "more than 16"), "%s", why);
    many[n - strlen(",nats://h16:1")] = 0;
    cr_assert(fr_nats_list_parse(many, &l, why, sizeof why), "16 URLs: %s", why);
    cr_assert_eq(l.count, 16);
    cr_assert_str_eq(l.url[15], "nats://h15:1");
    static char longest[FR_NATS_LIST_MAX + 8];
    memset(longest, 'a', sizeof longest - 1);
    memcpy(longest, "nats://", 7);
    cr_assert(!fr_nats_list_parse(longest, &l, why, sizeof why));
    cr_assert(strstr(why, "bytes: at most 1023"), "%s", why);
}
