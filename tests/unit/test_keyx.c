/*
 * keyx: conversation keys from each head source, in configured order.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "http1.h"
#include "keyx.h"

#define BACKEND "[backend b1]\naddress = 127.0.0.1:9001\n"

static struct rl_conf *conf_with_key(const char *key)
{
	char text[1024];
	struct conf_errors errs = {0};

	snprintf(text, sizeof(text), "[routing]\nkey = %s\n" BACKEND, key);
	struct rl_conf *c = conf_load_string(text, "t.ini", &errs);
	for (size_t i = 0; i < errs.n; i++)
		cr_log_error("%s", errs.msg[i]);
	conf_errors_free(&errs);
	cr_assert_not_null(c, "config with key = %s must load", key);
	return c;
}

/* Extract with `key` from raw request `req`; returns the miss reason, key in out. */
static enum keyx_miss extract(const char *key, const char *req, struct keyx_key *out)
{
	struct rl_conf *c = conf_with_key(key);
	struct http_head h;

	cr_assert_eq(http_parse_request(req, strlen(req), 16384, &h), HTTP_OK, "parse %s", req);
	enum keyx_miss r = keyx_extract(c, req, &h, out);
	conf_free(c);
	return r;
}

static void expect_key(const char *key, const char *req, const char *want)
{
	struct keyx_key k;

	cr_assert_eq(extract(key, req, &k), KEYX_FOUND, "%s on %s", key, req);
	cr_assert_str_eq(k.buf, want);
	cr_assert_eq(k.len, strlen(want));
}

static void expect_miss(const char *key, const char *req, enum keyx_miss why)
{
	struct keyx_key k;

	cr_assert_eq(extract(key, req, &k), why, "%s on %s", key, req);
	cr_assert_eq(k.source, -1);
}

Test(keyx, header_is_found_case_insensitively)
{
	expect_key("header:X-Conversation-ID",
		   "GET / HTTP/1.1\r\nHost: a\r\nx-conversation-id: abc-123\r\n\r\n", "abc-123");
}

Test(keyx, header_absent_is_a_miss)
{
	expect_miss("header:X-Conversation-ID", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		    KEYX_MISS_ABSENT);
}

Test(keyx, empty_header_value_is_invalid)
{
	expect_miss("header:X-Conv", "GET / HTTP/1.1\r\nHost: a\r\nX-Conv:\r\n\r\n",
		    KEYX_MISS_INVALID);
}

Test(keyx, query_parameter_is_percent_decoded)
{
	expect_key("query:chat", "GET /x?a=1&chat=r%C3%A9m+y&b=2 HTTP/1.1\r\nHost: a\r\n\r\n",
		   "r\xc3\xa9m y");
}

Test(keyx, query_name_must_match_whole)
{
	expect_miss("query:chat", "GET /x?mychat=1&chatx=2 HTTP/1.1\r\nHost: a\r\n\r\n",
		    KEYX_MISS_ABSENT);
}

Test(keyx, decoded_control_bytes_are_refused)
{
	/* %0d%0a would let a client inject a header into the request to the bot */
	expect_miss("query:c", "GET /?c=a%0d%0aX-Evil:%201 HTTP/1.1\r\nHost: a\r\n\r\n",
		    KEYX_MISS_INVALID);
}

Test(keyx, cookie_among_several)
{
	expect_key("cookie:sid",
		   "GET / HTTP/1.1\r\nHost: a\r\nCookie: theme=dark; sid=s-42; x=1\r\n\r\n",
		   "s-42");
}

Test(keyx, cookie_in_second_cookie_field)
{
	expect_key("cookie:sid",
		   "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: sid=zz\r\n\r\n", "zz");
}

Test(keyx, path_segment_counts_from_one)
{
	expect_key("path:2", "GET /chats/c-77/messages?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", "c-77");
	expect_miss("path:4", "GET /chats/c-77/messages HTTP/1.1\r\nHost: a\r\n\r\n",
		    KEYX_MISS_ABSENT);
}

Test(keyx, path_segment_of_absolute_form_target)
{
	expect_key("path:1", "GET http://h.example/bots/x HTTP/1.1\r\nHost: h.example\r\n\r\n",
		   "bots");
}

Test(keyx, path_regex_first_group)
{
	expect_key("path:^/webhook/([a-z0-9]+)/", "POST /webhook/tg42/update HTTP/1.1\r\n"
						  "Host: a\r\nContent-Length: 0\r\n\r\n",
		   "tg42");
	expect_miss("path:^/webhook/([a-z0-9]+)/", "GET /other HTTP/1.1\r\nHost: a\r\n\r\n",
		    KEYX_MISS_ABSENT);
}

Test(keyx, first_present_source_wins)
{
	const char *req = "GET /?c=from-query HTTP/1.1\r\nHost: a\r\nX-C: from-header\r\n\r\n";
	struct keyx_key k;

	cr_assert_eq(extract("header:X-C, query:c", req, &k), KEYX_FOUND);
	cr_assert_str_eq(k.buf, "from-header");
	cr_assert_eq(k.source, 0);
	cr_assert_eq(extract("header:X-Missing, query:c", req, &k), KEYX_FOUND);
	cr_assert_str_eq(k.buf, "from-query");
	cr_assert_eq(k.source, 1);
}

Test(keyx, oversized_key_is_invalid)
{
	char req[2048];
	char big[KEYX_MAX + 2];

	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\nX-C: %s\r\n\r\n", big);
	expect_miss("header:X-C", req, KEYX_MISS_INVALID);
}

Test(keyx, body_sources_are_reported_unsupported)
{
	struct rl_conf *c = conf_with_key("header:X-C, json:message.chat.id");

	cr_assert_str_eq(keyx_unsupported(c), "json");
	conf_free(c);
	c = conf_with_key("header:X-C, query:q");
	cr_assert_null(keyx_unsupported(c));
	conf_free(c);
}
