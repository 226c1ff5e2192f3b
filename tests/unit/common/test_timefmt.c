/* RFC 3339 timestamps and short durations (src/common/timefmt.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "common/timefmt.h"
#include "freshet/err.h"

static int64_t parse_ok(const char *s)
{
    int64_t us = 0;
    int rc = fr_time_parse(s, strlen(s), &us);
    cr_assert_eq(rc, FR_OK, "\"%s\" must parse (%s)", s, fr_err_name(rc));
    return us;
}

static void parse_bad(const char *s)
{
    int64_t us = 12345;
    cr_assert_eq(fr_time_parse(s, strlen(s), &us), FR_E_BAD_ARG, "\"%s\" must be rejected", s);
    cr_assert_eq(us, 12345, "\"%s\": output untouched on error", s);
}

#define SEC 1000000LL

Test(timefmt, parses_utc_and_formats_back)
{
    cr_assert_eq(parse_ok("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(parse_ok("2026-11-28T10:00:00Z"), 1795860000LL * SEC);
    cr_assert_eq(parse_ok("2000-03-01T00:00:00Z"), 951868800LL * SEC);
    char out[32];
    fr_time_format(1795860000LL * SEC, out);
    cr_assert_str_eq(out, "2026-11-28T10:00:00.000000Z");
    cr_assert_eq(strlen(out), 27u);
    fr_time_format(0, out);
    cr_assert_str_eq(out, "1970-01-01T00:00:00.000000Z");
}

Test(timefmt, fractional_seconds_are_microseconds_and_extra_digits_truncate)
{
    int64_t base = 1795860000LL * SEC;
    cr_assert_eq(parse_ok("2026-11-28T10:00:00.5Z"), base + 500000);
    cr_assert_eq(parse_ok("2026-11-28T10:00:00.123456Z"), base + 123456);
    cr_assert_eq(parse_ok("2026-11-28T10:00:00.000001Z"), base + 1);
    cr_assert_eq(parse_ok("2026-11-28T10:00:00.123456789Z"), base + 123456, "nanoseconds truncate");
    parse_bad("2026-11-28T10:00:00.Z");
    parse_bad("2026-11-28T10:00:00.1234567890Z"); /* more than 9 digits */
    char out[32];
    fr_time_format(base + 123456, out);
    cr_assert_str_eq(out, "2026-11-28T10:00:00.123456Z");
}

Test(timefmt, offsets_shift_to_utc)
{
    int64_t utc = parse_ok("2026-11-28T10:00:00Z");
    cr_assert_eq(parse_ok("2026-11-28T11:00:00+01:00"), utc);
    cr_assert_eq(parse_ok("2026-11-28T04:30:00-05:30"), utc);
    cr_assert_eq(parse_ok("2026-11-28T10:00:00+00:00"), utc);
    cr_assert_eq(parse_ok("2026-11-28T10:00:00-00:00"), utc);
    cr_assert_eq(parse_ok("2026-11-29T09:59:00+23:59"), utc);
    cr_assert_eq(parse_ok("2026-11-28 10:00:00z"), utc, "space separator and lower-case z");
    cr_assert_eq(parse_ok("2026-11-28t10:00:00.250+01:00"), utc - 3600 * SEC + 250000);
    parse_bad("2026-11-28T10:00:00+24:00");
    parse_bad("2026-11-28T10:00:00+01:60");
    parse_bad("2026-11-28T10:00:00+0100");
    parse_bad("2026-11-28T10:00:00+01:00Z");
    parse_bad("2026-11-28T10:00:00"); /* no zone: ambiguous */
}

Test(timefmt, leap_days_are_validated)
{
    cr_assert_eq(parse_ok("2024-02-29T00:00:00Z"), parse_ok("2024-02-28T00:00:00Z") + 86400 * SEC);
    cr_assert_eq(parse_ok("2000-02-29T00:00:00Z"), parse_ok("2000-03-01T00:00:00Z") - 86400 * SEC,
                 "2000 is a leap year (divisible by 400)");
    parse_bad("2023-02-29T00:00:00Z");
    parse_bad("1900-02-29T00:00:00Z"); /* divisible by 100, not 400 */
    parse_bad("2100-02-29T00:00:00Z");
    parse_bad("2024-02-30T00:00:00Z");
    parse_bad("2024-04-31T00:00:00Z");
    parse_bad("2024-13-01T00:00:00Z");
    parse_bad("2024-00-01T00:00:00Z");
    parse_bad("2024-01-00T00:00:00Z");
    parse_bad("2024-01-01T24:00:00Z");
    parse_bad("2024-01-01T00:60:00Z");
    parse_bad("2024-01-01T00:00:61Z");
    char out[32];
    fr_time_format(parse_ok("2024-02-29T23:59:59.999999Z"), out);
    cr_assert_str_eq(out, "2024-02-29T23:59:59.999999Z");
}

Test(timefmt, integers_are_microseconds)
{
    cr_assert_eq(parse_ok("0"), 0);
    cr_assert_eq(parse_ok("1795860000000000"), 1795860000LL * SEC);
    cr_assert_eq(parse_ok("-5"), -5);
    cr_assert_eq(parse_ok("+7"), 7);
    cr_assert_eq(parse_ok("9223372036854775807"), INT64_MAX);
    parse_bad("9223372036854775808");
    parse_bad("99999999999999999999");
    parse_bad("12a");
    parse_bad("-");
    parse_bad("1.5");
}

Test(timefmt, rejects_garbage)
{
    static const char *bad[] = {
        "",
        " ",
        "now",
        "2026-11-28",
        "2026-11-28T10:00Z",
        "2026/11/28T10:00:00Z",
        "2026-11-28X10:00:00Z",
        "2026-1a-28T10:00:00Z",
        "2026-11-28T10:00:00ZZ",
        "2026-11-28T10:00:00Z ",
        " 2026-11-28T10:00:00Z",
        "2026-11-28T10:00:00.12345678901234567890123Z", /* over 40 bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_bad(bad[i]);
    int64_t us;
    /* the length is honoured: bytes after len are not read */
    cr_assert_eq(fr_time_parse("2026-11-28T10:00:00Zjunk", 20, &us), FR_OK);
    cr_assert_eq(fr_time_parse("12345", 3, &us), FR_OK);
    cr_assert_eq(us, 123);
}

Test(timefmt, format_then_parse_round_trips)
{
    uint64_t s = 88172645463325252ULL;
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        /* years 0001..9998 */
        int64_t us = (int64_t)(s % (2 * 253402300800LL * SEC)) - 62135596800LL * SEC + 86400 * SEC;
        if (us > 253402214400LL * SEC)
            us %= 253402214400LL * SEC;
        char out[32];
        fr_time_format(us, out);
        cr_assert_eq(strlen(out), 27u, "%s", out);
        int64_t back = 0;
        cr_assert_eq(fr_time_parse(out, strlen(out), &back), FR_OK, "%s", out);
        cr_assert_eq(back, us, "%s", out);
    }
    char out[32];
    fr_time_format(-1, out);
    cr_assert_str_eq(out, "1969-12-31T23:59:59.999999Z");
    cr_assert_eq(parse_ok(out), -1);
}

static int64_t dur_ok(const char *s)
{
    int64_t us = -1;
    int rc = fr_duration_parse(s, &us);
    cr_assert_eq(rc, FR_OK, "\"%s\" must parse", s);
    return us;
}

Test(timefmt, durations_parse_every_unit)
{
    cr_assert_eq(dur_ok("0"), 0);
    cr_assert_eq(dur_ok("600"), 600 * SEC, "plain integers are seconds");
    cr_assert_eq(dur_ok("90s"), 90 * SEC);
    cr_assert_eq(dur_ok("500ms"), 500000);
    cr_assert_eq(dur_ok("7us"), 7);
    cr_assert_eq(dur_ok("10m"), 600 * SEC);
    cr_assert_eq(dur_ok("1h"), 3600 * SEC);
    cr_assert_eq(dur_ok("30d"), 30 * 86400 * SEC);
    cr_assert_eq(dur_ok("2w"), 14 * 86400 * SEC);
    cr_assert_eq(dur_ok("0ms"), 0);
}

Test(timefmt, durations_reject_negative_overflow_and_unknown_units)
{
    static const char *bad[] = {"", "-1s", "+1s", "1.5h", "10x", "10 s", "s", "1hh", "1H",
                                "106751992d", "9223372036855s", "99999999999999999999",
                                "1000000000000000000000000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us = 77;
        cr_assert_eq(fr_duration_parse(bad[i], &us), FR_E_BAD_ARG, "\"%s\" must be rejected",
                     bad[i]);
        cr_assert_eq(us, 77);
    }
    cr_assert_eq(dur_ok("106751991d"), 106751991LL * 86400 * SEC, "the largest whole-day duration");
}

Test(timefmt, durations_format_shortest_and_round_trip)
{
    static const struct {
        int64_t us;
        const char *s;
    } cases[] = {{0, "0s"},
                 {600 * SEC, "10m"},
                 {30 * 86400 * SEC, "30d"},
                 {14 * 86400 * SEC, "14d"},
                 {3600 * SEC, "1h"},
                 {90 * SEC, "90s"},
                 {1500000, "1500ms"},
                 {7, "7us"},
                 {INT64_MAX, "9223372036854775807us"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        fr_duration_format(cases[i].us, out);
        cr_assert_str_eq(out, cases[i].s);
    }
    static const char *inputs[] = {"600", "90s", "3600s", "1440m", "500ms", "2w", "1000000us",
                                   "123456789ms", "106751d"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        int64_t us = dur_ok(inputs[i]);
        char out[32];
        fr_duration_format(us, out);
        cr_assert_eq(dur_ok(out), us, "%s -> %s", inputs[i], out);
    }
}
