/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the Autodiscover model (setting and error names, candidate
 * URLs from a domain, redirect targets, the grouping key).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ews/autodiscover.h"
#include "base/xmalloc.h"

static void
free_all(char *out[AD_MAX_CANDIDATES], size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		free(out[i]);
}

START_TEST(test_candidates)
{
	static const char *const bad[] = {
		"", "@", "user@", ".", "contoso..com", "-contoso.com",
		"contoso-.com", "conto so.com", "contoso.com/x", "con_toso.com",
		"user@contoso.com:443", "caf\xc3\xa9.example", ".contoso.com",
	};
	char	*out[AD_MAX_CANDIDATES], label[70], big[300];
	size_t	 i;

	/* Microsoft's order: the domain itself, then autodiscover.DOMAIN. */
	ck_assert_uint_eq(ad_candidates("Sadie.Daniels@Contoso.COM", out), 2);
	ck_assert_str_eq(out[0],
	    "https://contoso.com/autodiscover/autodiscover.svc");
	ck_assert_str_eq(out[1],
	    "https://autodiscover.contoso.com/autodiscover/autodiscover.svc");
	free_all(out, 2);
	/* A bare domain, with the root dot; the last '@' counts. */
	ck_assert_uint_eq(ad_candidates("mail.contoso.com.", out), 2);
	ck_assert_str_eq(out[1], "https://autodiscover.mail.contoso.com/"
	    "autodiscover/autodiscover.svc");
	free_all(out, 2);
	ck_assert_uint_eq(ad_candidates("\"a@b\"@x-1.example", out), 2);
	ck_assert_str_eq(out[0],
	    "https://x-1.example/autodiscover/autodiscover.svc");
	free_all(out, 2);
	ck_assert_uint_eq(ad_candidates(NULL, out), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(ad_candidates(bad[i], out) == 0, "took '%s'",
		    bad[i]);
	/* Label and name lengths. */
	memset(label, 'a', 63);
	strcpy(label + 63, ".com");
	ck_assert_uint_eq(ad_candidates(label, out), 2);
	free_all(out, 2);
	memset(label, 'a', 64);
	strcpy(label + 64, ".com");
	ck_assert_uint_eq(ad_candidates(label, out), 0);
	for (i = 0; i + 10 < AD_MAX_DOMAIN; i += 10)
		memcpy(big + i, "abcdefghi.", 10);
	memcpy(big + i, "abc", 3);
	big[i + 3] = '\0';		/* 253 characters */
	ck_assert_uint_eq(strlen(big), AD_MAX_DOMAIN);
	ck_assert_uint_eq(ad_candidates(big, out), 2);
	free_all(out, 2);
	strcat(big, "d");
	ck_assert_uint_eq(ad_candidates(big, out), 0);
}
END_TEST

START_TEST(test_redirect_url)
{
	ck_assert(ad_redirect_url_ok("https://autodiscover.eu.contoso.com/"
	    "autodiscover/autodiscover.svc"));
	ck_assert(ad_redirect_url_ok("HTTPS://host:8443/x"));
	ck_assert(!ad_redirect_url_ok("http://autodiscover.contoso.com/"
	    "autodiscover/autodiscover.svc"));
	ck_assert(!ad_redirect_url_ok("https://"));
	ck_assert(!ad_redirect_url_ok("https:///path"));
	ck_assert(!ad_redirect_url_ok("https://@evil"));
	ck_assert(!ad_redirect_url_ok("https://a b/"));
	ck_assert(!ad_redirect_url_ok("https://a\r\nX-Evil: 1"));
	ck_assert(!ad_redirect_url_ok("elvin@mail.contoso.com"));
	ck_assert(!ad_redirect_url_ok(NULL));
}
END_TEST

START_TEST(test_exchange_online)
{
	/* A migrated mailbox's remote routing address, and EXO's URLs. */
	ck_assert(ad_exchange_online("elvin@contoso.mail.onmicrosoft.com"));
	ck_assert(ad_exchange_online("Elvin@Contoso.MAIL.OnMicrosoft.com"));
	ck_assert(ad_exchange_online("https://outlook.office365.com/EWS/"
	    "Exchange.asmx"));
	ck_assert(ad_exchange_online("https://autodiscover-s.outlook.com/"
	    "autodiscover/autodiscover.svc"));
	ck_assert(ad_exchange_online("HTTPS://outlook.office.com:443/x"));
	/* The tenant's own domains, on-premises hosts, look-alikes. */
	ck_assert(!ad_exchange_online("elvin@contoso.onmicrosoft.com"));
	ck_assert(!ad_exchange_online("elvin@mail.onmicrosoft.com"));
	ck_assert(!ad_exchange_online("elvin@contoso.mail.onmicrosoft.com."));
	ck_assert(!ad_exchange_online("elvin@evilmail.onmicrosoft.com"));
	ck_assert(!ad_exchange_online("elvin@contoso.com"));
	ck_assert(!ad_exchange_online("https://mail.contoso.com/EWS/"
	    "Exchange.asmx"));
	ck_assert(!ad_exchange_online("https://outlook.office365.com.evil/"));
	ck_assert(!ad_exchange_online("https://evil-outlook.office365.com/"));
	ck_assert(!ad_exchange_online("http://outlook.office365.com/"));
	ck_assert(!ad_exchange_online("outlook.office365.com"));
	ck_assert(!ad_exchange_online(NULL));
}
END_TEST

START_TEST(test_names)
{
	unsigned	 i;

	for (i = 0; i < AD_SETTING_MAX; i++)
		ck_assert_int_eq(ad_setting_from_name(ad_setting_name(
		    (enum ad_setting)i)), i);
	ck_assert_str_eq(ad_setting_name(AD_GROUPING_INFORMATION),
	    "GroupingInformation");
	ck_assert_ptr_null(ad_setting_name(AD_SETTING_MAX));
	ck_assert_int_eq(ad_setting_from_name("CasVersion"), AD_SETTING_MAX);
	ck_assert_int_eq(ad_setting_from_name(NULL), AD_SETTING_MAX);
	for (i = 0; i < AD_ERR_OTHER; i++)
		ck_assert_int_eq(ad_error_from_code(ad_error_name(
		    (enum ad_error)i)), i);
	ck_assert_int_eq(ad_error_from_code(""), AD_ERR_NONE);
	ck_assert_int_eq(ad_error_from_code(NULL), AD_ERR_NONE);
	ck_assert_int_eq(ad_error_from_code("Whatever"), AD_ERR_OTHER);
	ck_assert_str_eq(ad_error_name(AD_ERR_MAX), "Other");
	ck_assert(ad_error_transient(AD_ERR_SERVER_BUSY));
	ck_assert(ad_error_transient(AD_ERR_INTERNAL_SERVER_ERROR));
	ck_assert(!ad_error_transient(AD_ERR_INVALID_USER));
	ck_assert(!ad_error_transient(AD_ERR_REDIRECT_URL));
}
END_TEST

START_TEST(test_group_key)
{
	struct ad_user	 u, v;
	char		*k1, *k2;

	memset(&u, 0, sizeof u);
	ck_assert_ptr_null(ad_group_key(&u));
	u.values[AD_EXTERNAL_EWS_URL] = xstrdup("https://a/EWS/Exchange.asmx");
	u.values[AD_GROUPING_INFORMATION] = xstrdup("PRDNA01");
	u.values[AD_INTERNAL_MAILBOX_SERVER] = xstrdup("mbx1.corp");
	k1 = ad_group_key(&u);
	ck_assert_str_eq(k1, "https://a/EWS/Exchange.asmx\nPRDNA01");
	/* The separator keeps different splits apart. */
	memset(&v, 0, sizeof v);
	v.values[AD_EXTERNAL_EWS_URL] = xstrdup("https://a/EWS/Exchange.asmxP");
	v.values[AD_GROUPING_INFORMATION] = xstrdup("RDNA01");
	k2 = ad_group_key(&v);
	ck_assert_str_ne(k1, k2);
	free(k1);
	free(k2);
	ad_user_free(&v);
	/* No ExternalEwsUrl: the internal one; no grouping: the server. */
	v.values[AD_INTERNAL_EWS_URL] = xstrdup("https://in/EWS/Exchange.asmx");
	v.values[AD_GROUPING_INFORMATION] = xstrdup("");
	v.values[AD_INTERNAL_MAILBOX_SERVER] = xstrdup("mbx2.corp");
	k2 = ad_group_key(&v);
	ck_assert_str_eq(k2, "https://in/EWS/Exchange.asmx\nmbx2.corp");
	free(k2);
	ad_user_free(&v);
	v.values[AD_GROUPING_INFORMATION] = xstrdup("PRDNA02");
	k2 = ad_group_key(&v);
	ck_assert_str_eq(k2, "\nPRDNA02");
	free(k2);
	ad_user_free(&v);
	ck_assert_ptr_null(v.values[AD_GROUPING_INFORMATION]);
	ad_user_free(&u);
	ck_assert_ptr_null(u.values[AD_EXTERNAL_EWS_URL]);
}
END_TEST

static Suite *
autodiscover_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("autodiscover");
	tc = tcase_create("model");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_candidates);
	tcase_add_test(tc, test_redirect_url);
	tcase_add_test(tc, test_exchange_online);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_group_key);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(autodiscover_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
