/*
 * test_hmp_parse.c - QEMU's HMP argument syntax: words, quoted strings and
 * their escapes, args_type specs (optional words, rest-of-line, flags,
 * 32-bit expressions) and QEMU's error texts for each way a line can be
 * wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hmp/internal.h"

static void test_words_are_split_on_whitespace(void **state)
{
    const char *p = "  vm \t exits,halt_exits  kvm";
    char *w;
    assert_true(qs_hmp_get_str(&p, &w));
    assert_string_equal(w, "vm");
    free(w);
    assert_true(qs_hmp_get_str(&p, &w));
    assert_string_equal(w, "exits,halt_exits");
    free(w);
    assert_true(qs_hmp_get_str(&p, &w));
    assert_string_equal(w, "kvm");
    free(w);
    assert_false(qs_hmp_get_str(&p, &w));
    assert_null(w);
}

static void test_quoted_strings_keep_spaces_and_unescape(void **state)
{
    const char *p = "\"a b\\n\\r\\\\\\'\\\"c\"next";
    char *w;
    assert_true(qs_hmp_get_str(&p, &w));
    assert_string_equal(w, "a b\n\r\\'\"c");
    free(w);
    /* the closing quote ends the word even without a space */
    assert_true(qs_hmp_get_str(&p, &w));
    assert_string_equal(w, "next");
    free(w);

    p = "\"\"";
    assert_true(qs_hmp_get_str(&p, &w));
    assert_string_equal(w, "");
    free(w);
}

static void test_bad_quotes_fail(void **state)
{
    char *w;
    const char *p = "\"unterminated";
    assert_false(qs_hmp_get_str(&p, &w));
    p = "\"bad \\x escape\"";
    assert_false(qs_hmp_get_str(&p, &w));
    p = "\"trailing backslash\\";
    assert_false(qs_hmp_get_str(&p, &w));
    p = "   ";
    assert_false(qs_hmp_get_str(&p, &w));
}

#define STATS_ARGS "all:-a,bounds:-b,target:s,names:s?,provider:s?"

/* Parses; returns the error text ("" on success) in a static buffer. */
static const char *parse(const char *cmd, const char *spec, const char *line, qs_hmp_args *a)
{
    static char text[512];
    qs_buf err;
    qs_buf_init(&err);
    bool ok = qs_hmp_parse_args(cmd, spec, line, a, &err);
    snprintf(text, sizeof(text), "%.*s", (int)err.len, err.data ? err.data : "");
    assert_int_equal(ok, err.len == 0);
    qs_buf_free(&err);
    return text;
}

static void test_optional_words_may_be_absent(void **state)
{
    qs_hmp_args a;
    assert_string_equal(parse("stats", STATS_ARGS, " vm ", &a), "");
    assert_string_equal(qs_hmp_args_str(&a, "target"), "vm");
    assert_null(qs_hmp_args_str(&a, "names"));
    assert_null(qs_hmp_args_str(&a, "provider"));
    assert_false(qs_hmp_args_flag(&a, "all"));
    qs_hmp_args_free(&a);

    assert_string_equal(parse("stats", STATS_ARGS, "vcpu * \"kvm\"", &a), "");
    assert_string_equal(qs_hmp_args_str(&a, "names"), "*");
    assert_string_equal(qs_hmp_args_str(&a, "provider"), "kvm");
    qs_hmp_args_free(&a);
}

static void test_missing_and_extraneous_arguments(void **state)
{
    qs_hmp_args a;
    assert_string_equal(parse("stats", STATS_ARGS, "", &a), "stats: string expected\n");
    qs_hmp_args_free(&a);
    assert_string_equal(parse("stats", STATS_ARGS, "vm \"open", &a), "stats: string expected\n");
    qs_hmp_args_free(&a);
    assert_string_equal(parse("stats", STATS_ARGS, "vm a b c", &a),
                        "stats: extraneous characters at the end of line\n");
    qs_hmp_args_free(&a);
    assert_string_equal(parse("quit|q", "", " x", &a),
                        "quit|q: extraneous characters at the end of line\n");
    qs_hmp_args_free(&a);
    assert_string_equal(parse("quit|q", "", "   ", &a), "");
    qs_hmp_args_free(&a);
}

static void test_flags_in_any_order_and_combined(void **state)
{
    qs_hmp_args a;
    assert_string_equal(parse("stats", STATS_ARGS, "-b -a vcpu", &a), "");
    assert_true(qs_hmp_args_flag(&a, "all"));
    assert_true(qs_hmp_args_flag(&a, "bounds"));
    assert_string_equal(qs_hmp_args_str(&a, "target"), "vcpu");
    qs_hmp_args_free(&a);

    assert_string_equal(parse("stats", STATS_ARGS, "-ab vm", &a), "");
    assert_true(qs_hmp_args_flag(&a, "all"));
    assert_true(qs_hmp_args_flag(&a, "bounds"));
    qs_hmp_args_free(&a);

    assert_string_equal(parse("stats", STATS_ARGS, "-b vm", &a), "");
    assert_false(qs_hmp_args_flag(&a, "all"));
    assert_true(qs_hmp_args_flag(&a, "bounds"));
    qs_hmp_args_free(&a);

    assert_string_equal(parse("qom-set", "json:-j,path:s,property:s,value:S", "-x a b c", &a),
                        "qom-set: unsupported option -x\n");
    qs_hmp_args_free(&a);
}

static void test_rest_of_line_is_taken_verbatim(void **state)
{
    qs_hmp_args a;
    assert_string_equal(parse("qom-set", "json:-j,path:s,property:s,value:S",
                              "/p prop  \"4\"  x ", &a), "");
    assert_false(qs_hmp_args_flag(&a, "json"));
    assert_string_equal(qs_hmp_args_str(&a, "value"), "\"4\"  x ");
    qs_hmp_args_free(&a);
    assert_string_equal(parse("qom-set", "json:-j,path:s,property:s,value:S", "/p prop", &a),
                        "qom-set: string expected\n");
    qs_hmp_args_free(&a);
    assert_string_equal(parse("help|?", "name:S?", "", &a), "");
    assert_null(qs_hmp_args_str(&a, "name"));
    qs_hmp_args_free(&a);
}

static const char *parse_int(const char *line, int64_t *v)
{
    qs_hmp_args a;
    const char *err = parse("cpu", "index:i", line, &a);
    *v = qs_hmp_args_int(&a, "index");
    qs_hmp_args_free(&a);
    return err;
}

static void test_integer_expressions(void **state)
{
    int64_t v;
    assert_string_equal(parse_int("1", &v), "");
    assert_int_equal(v, 1);
    assert_string_equal(parse_int(" 1 + 2 * 3 ", &v), "");
    assert_int_equal(v, 7);
    assert_string_equal(parse_int("(1+2)*3", &v), "");
    assert_int_equal(v, 9);
    assert_string_equal(parse_int("0x10", &v), "");
    assert_int_equal(v, 16);
    assert_string_equal(parse_int("'a'", &v), "");
    assert_int_equal(v, 97);
    /* QEMU's logic operators bind tighter than * / %: 7 % (4 | 8) */
    assert_string_equal(parse_int("7 % 4 | 8", &v), "");
    assert_int_equal(v, 7);
    assert_string_equal(parse_int("~0 & 5", &v), "");
    assert_int_equal(v, 5);
}

static void test_integer_errors_use_qemu_texts(void **state)
{
    int64_t v;
    assert_string_equal(parse_int("", &v), "unexpected end of expression\n");
    assert_string_equal(parse_int("1+", &v), "unexpected end of expression\n");
    assert_string_equal(parse_int("x", &v), "invalid char 'x' in expression\n");
    assert_string_equal(parse_int("(1", &v), "')' expected\n");
    assert_string_equal(parse_int("1/0", &v), "division by zero\n");
    assert_string_equal(parse_int("99999999999999999999999", &v), "number too large\n");
    assert_string_equal(parse_int("-1", &v), "'cpu' has failed: integer is for 32-bit values\n");
    assert_string_equal(parse_int("0x100000000", &v),
                        "'cpu' has failed: integer is for 32-bit values\n");
    assert_string_equal(parse_int("1 2", &v), "cpu: extraneous characters at the end of line\n");
    /* Nesting is bounded instead of recursing until the stack runs out. */
    size_t deep = 1000000;
    char *line = malloc(deep + 2);
    memset(line, '(', deep);
    strcpy(line + deep, "1");
    assert_string_equal(parse_int(line, &v), "expression nested too deeply\n");
    memset(line, '-', deep);
    assert_string_equal(parse_int(line, &v), "expression nested too deeply\n");
    free(line);
    assert_string_equal(parse_int("((((((((((1))))))))))+-~-~-~-~-~1", &v), "");
    assert_int_equal(v, 7);
    /* INT64_MIN / -1 does not trap */
    const char *p = "(0-9223372036854775807-1)/-1";
    assert_true(qs_hmp_get_expr(&p, &v, NULL));
}

static void test_comma_split_keeps_empty_items(void **state)
{
    size_t n;
    char **v = qs_hmp_split_commas("a,,b,", &n);
    assert_int_equal(n, 4);
    assert_string_equal(v[0], "a");
    assert_string_equal(v[1], "");
    assert_string_equal(v[2], "b");
    assert_string_equal(v[3], "");
    assert_null(v[4]);
    qs_hmp_strv_free(v);

    v = qs_hmp_split_commas("", &n);    /* as g_strsplit: no items at all */
    assert_int_equal(n, 0);
    assert_null(v[0]);
    qs_hmp_strv_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words_are_split_on_whitespace),
        cmocka_unit_test(test_quoted_strings_keep_spaces_and_unescape),
        cmocka_unit_test(test_bad_quotes_fail),
        cmocka_unit_test(test_optional_words_may_be_absent),
        cmocka_unit_test(test_missing_and_extraneous_arguments),
        cmocka_unit_test(test_flags_in_any_order_and_combined),
        cmocka_unit_test(test_rest_of_line_is_taken_verbatim),
        cmocka_unit_test(test_integer_expressions),
        cmocka_unit_test(test_integer_errors_use_qemu_texts),
        cmocka_unit_test(test_comma_split_keeps_empty_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
