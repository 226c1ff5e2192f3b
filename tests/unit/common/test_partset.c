/* Partition sets ("0-3,8") and the shared partition hash (src/common/partset.c,
 * include/freshet/partition.h). */
#include <criterion/criterion.h>
#include <string.h>

#include "common/partset.h"
#include "freshet/partition.h"

static void members(const char *text, uint32_t count, const char *want)
{
    bool m[64];
    char why[256] = "";
    cr_assert_eq(fr_partset_parse(text, count, m, why, sizeof why), 0, "\"%s\": %s", text, why);
    for (uint32_t i = 0; i < count; i++)
        cr_assert_eq(m[i], want[i] == '1', "\"%s\": partition %u", text, i);
}

static void rejected(const char *text, uint32_t count, const char *reason_part)
{
    bool m[64];
    char why[256] = "";
    cr_assert_eq(fr_partset_parse(text, count, m, why, sizeof why), -1, "\"%s\" must be rejected",
                 text);
    cr_assert(strstr(why, reason_part), "\"%s\": reason \"%s\" should mention \"%s\"", text, why,
              reason_part);
}

Test(partset, ranges_and_lists)
{
    members("0-7", 8, "11111111");
    members("0-3", 8, "11110000");
    members("0,2,5", 8, "10100100");
    members("1-2, 6", 8, "01100010");
    members("7", 8, "00000001");
}

Test(partset, empty_means_every_partition)
{
    members("", 4, "1111");
    members("  ", 4, "1111");
}

Test(partset, bad_text_names_the_problem)
{
    rejected("0-8", 8, "not below the partition count 8");
    rejected("3-1", 8, "bad range");
    rejected("a", 8, "expected a number");
    rejected("1;2", 8, "unexpected");
    rejected("1,", 8, "expected a number");
    rejected("99999999999", 8, "expected a number");
}

Test(partition, fnv1a_32_reference_vectors)
{
    cr_assert_eq(fr_partition_hash("", 0), 0x811c9dc5u);
    cr_assert_eq(fr_partition_hash("a", 1), 0xe40c292cu);
    cr_assert_eq(fr_partition_hash("foobar", 6), 0xbf9cf968u);
}

Test(partition, entity_to_partition_is_hash_mod_count)
{
    cr_assert_eq(fr_partition_of("foobar", 6, 8), 0xbf9cf968u % 8);
    cr_assert_eq(fr_partition_of("a", 1, 1), 0u);
    cr_assert_eq(fr_partition_of("a", 1, 0), 0u, "no partitions: 0, not a division by zero");
}
