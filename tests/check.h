/* check.h — the assertions every test program uses.
 *
 *   CHECK(cond)                  record a failure (file:line and the expression) and go on
 *   CHECK_EQ_INT(a, b)           integers, printing both values
 *   CHECK_EQ_STR(a, b)           strings (NULL-safe)
 *   CHECK_NEAR(a, b, tol)        |a-b| <= tol
 *   TEST_RUN(fn)                 run one test function, print its name and verdict
 *   return TEST_REPORT();        print "N passed, N failed" and give the exit status
 *
 * Each test function is `static void test_x(void)`. A failing CHECK never aborts the
 * program, so one run reports every broken assertion.
 */
#ifndef CLIPGRID_TEST_CHECK_H
#define CLIPGRID_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures_total;  /* assertions failed in the whole program */
static int check_failures_now;    /* assertions failed in the running test  */
static int check_tests_passed, check_tests_failed;
static const char *check_filter;  /* TEST_FILTER=substring runs only the matching tests */

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    check_failures_now++; check_failures_total++; } } while (0)

#define CHECK_EQ_INT(a, b) do { long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
    if (check_a_ != check_b_) { \
    fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a, #b, check_a_, check_b_); \
    check_failures_now++; check_failures_total++; } } while (0)

#define CHECK_EQ_STR(a, b) do { const char *check_a_ = (a), *check_b_ = (b); \
    if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) { \
    fprintf(stderr, "  FAIL %s:%d: %s == %s (\"%s\" vs \"%s\")\n", __FILE__, __LINE__, #a, #b, \
            check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)"); \
    check_failures_now++; check_failures_total++; } } while (0)

#define CHECK_NEAR(a, b, tol) do { double check_a_ = (a), check_b_ = (b); \
    if (!(fabs(check_a_ - check_b_) <= (tol))) { \
    fprintf(stderr, "  FAIL %s:%d: %s ~= %s (%.9g vs %.9g, tol %.3g)\n", __FILE__, __LINE__, #a, #b, \
            check_a_, check_b_, (double)(tol)); \
    check_failures_now++; check_failures_total++; } } while (0)

#define TEST_RUN(fn) do { if (!check_filter) check_filter = getenv("TEST_FILTER") ? getenv("TEST_FILTER") : ""; \
    if (*check_filter && !strstr(#fn, check_filter)) break; \
    check_failures_now = 0; fprintf(stderr, "[ RUN  ] %s\n", #fn); fn(); \
    if (check_failures_now) { check_tests_failed++; fprintf(stderr, "[ FAIL ] %s\n", #fn); } \
    else { check_tests_passed++; fprintf(stderr, "[  OK  ] %s\n", #fn); } } while (0)

#define TEST_REPORT() (fprintf(stderr, "%d passed, %d failed\n", check_tests_passed, check_tests_failed), \
    (check_tests_failed || check_tests_passed == 0) ? 1 : 0)

#endif
