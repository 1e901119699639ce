/*
 * keyx: conversation keys from each source (head and body), in configured order, and
 * why a request has none.
 *
 * Body cases run on tables: each row is a Content-Type, a body, a source and the key (or
 * miss) it must give. Every body is also fed cut at every byte offset, each prefix in a
 * buffer of exactly its size so AddressSanitizer catches a read past the end.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "http1.h"
#include "jsonkey.h"
#include "keyx.h"

#define ARRAY_LEN(a)  (sizeof(a) / sizeof((a)[0]))
#define BACKEND       "[backend b1]\naddress = 127.0.0.1:9001\n"
#define TEST_MAX_HEAD 16384
#define JSON          "application/json"
#define FORM          "application/x-www-form-urlencoded"
#define TEST_REQ_MAX  (128 * 1024)

static struct rl_conf *conf_from(const char *routing)
{
	char text[2048];
	struct conf_errors errs = {0};

	snprintf(text, sizeof(text), "[routing]\n%s\n" BACKEND, routing);
	struct rl_conf *c = conf_load_string(text, "t.ini", &errs);
	for (size_t i = 0; i < errs.n; i++)
		cr_log_error("%s", errs.msg[i]);
	conf_errors_free(&errs);
	cr_assert_not_null(c, "config [routing] %s must load", routing);
	return c;
}

static struct rl_conf *conf_with_key(const char *key)
{
	char routing[1024];

	snprintf(routing, sizeof(routing), "key = %s", key);
	return conf_from(routing);
}

/* Extract with `key` from raw request `req` (its body follows the head); returns the
 * miss reason, key in out. */
static enum keyx_miss extract_n(const char *key, const char *req, size_t len, bool complete,
                                struct keyx_key *out)
{
	struct rl_conf *c = conf_with_key(key);
	struct http_head h;

	cr_assert_eq(http_parse_request(req, len, TEST_MAX_HEAD, &h), HTTP_OK, "parse %s", req);
	size_t blen = len - h.head_len;
	char *body = blen > 0 ? malloc(blen) : NULL; /* exactly the body: overreads are caught */
	if (blen > 0)
		memcpy(body, req + h.head_len, blen);
	enum keyx_miss r = keyx_extract(c, req, &h, body, blen, complete, out);
	free(body);
	conf_free(c);
	return r;
}

static enum keyx_miss extract(const char *key, const char *req, struct keyx_key *out)
{
	return extract_n(key, req, strlen(req), true, out);
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

	cr_assert_eq(extract(key, req, &k), why, "%s on %s: want %s", key, req,
	             keyx_miss_name(why));
	cr_assert_eq(k.source, -1);
	cr_assert_eq(k.len, 0);
	cr_assert_str_eq(k.buf, "");
}

/* A POST with Content-Type ctype (NULL: none) and body; returns its length. */
static size_t post(char *out, size_t size, const char *ctype, const char *body, size_t blen)
{
	char ct[256] = "";
	int n;

	if (ctype != NULL)
		snprintf(ct, sizeof(ct), "Content-Type: %s\r\n", ctype);
	n = snprintf(out, size,
	             "POST /hook?q=1 HTTP/1.1\r\nHost: a\r\n%sContent-Length: %zu\r\n\r\n", ct,
	             blen);
	cr_assert(n > 0 && (size_t)n + blen < size);
	memcpy(out + n, body, blen);
	out[(size_t)n + blen] = '\0';
	return (size_t)n + blen;
}

/* ---- head sources (unchanged behaviour) ---- */

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
	expect_key("path:^/webhook/([a-z0-9]+)/",
	           "POST /webhook/tg42/update HTTP/1.1\r\n"
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
	cr_assert_eq(k.preset_row, -1);
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
	big[KEYX_MAX] = '\0'; /* exactly KEYX_MAX fits */
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\nX-C: %s\r\n\r\n", big);
	expect_key("header:X-C", req, big);
}

Test(keyx, every_source_type_is_supported)
{
	const char *keys[] = {"header:X-C, query:q",
	                      "json:message.chat.id",
	                      "form:From",
	                      "formjson:payload:team.id",
	                      "sym:form:From|form:To",
	                      "sym:path:^/c/([^/]+)|header:X-B"};

	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		struct rl_conf *c = conf_with_key(keys[i]);
		cr_assert_null(keyx_unsupported(c), "%s", keys[i]);
		conf_free(c);
	}
}

/* ---- body sources, on tables ---- */

struct body_case {
	const char *name;
	const char *ctype; /* NULL: no Content-Type field */
	const char *body;
	size_t len;          /* 0: strlen(body) */
	const char *key;     /* the [routing] key */
	const char *want;    /* expected key, or NULL for a miss */
	enum keyx_miss miss; /* KEYX_FOUND with want, else the expected miss */
};

#define MISS(why) NULL, KEYX_MISS_##why

static const struct body_case json_cases[] = {
        {"nested", JSON, "{\"message\":{\"chat\":{\"id\":5550000001}}}", 0, "json:message.chat.id",
         "5550000001", KEYX_FOUND},
        {"string value", JSON, "{\"sender\":\"conv-1\"}", 0, "json:sender", "conv-1", KEYX_FOUND},
        {"array index", JSON, "{\"entry\":[{\"id\":\"a\"},{\"id\":\"b\",\"x\":[1,[2]]}]}", 0,
         "json:entry.1.id", "b", KEYX_FOUND},
        {"index past end", JSON, "{\"entry\":[{\"id\":\"a\"}]}", 0, "json:entry.1.id",
         MISS(ABSENT)},
        {"index into nested arrays", JSON, "{\"m\":[[0,1],[2,[3,\"deep\"]]]}", 0, "json:m.1.1.1",
         "deep", KEYX_FOUND},
        {"numeric member name", JSON, "{\"owners\":{\"0\":\"g1\"}}", 0, "json:owners.0", "g1",
         KEYX_FOUND},
        {"2^63 stays exact", JSON, "{\"t\":9223372036854775808}", 0, "json:t",
         "9223372036854775808", KEYX_FOUND},
        {"2^64 stays exact", JSON, "{\"t\":18446744073709551616}", 0, "json:t",
         "18446744073709551616", KEYX_FOUND},
        {"negative supergroup id", JSON, "{\"chat\":{\"id\":-1001234567890}}", 0, "json:chat.id",
         "-1001234567890", KEYX_FOUND},
        {"number as written", JSON, "{\"n\":1.50e+10}", 0, "json:n", "1.50e+10", KEYX_FOUND},
        {"simple escapes", JSON, "{\"k\":\"a\\\"b\\\\c\\/d\"}", 0, "json:k", "a\"b\\c/d",
         KEYX_FOUND},
        {"unicode escape", JSON, "{\"k\":\"caf\\u00e9-\\u0041\"}", 0, "json:k", "caf\xc3\xa9-A",
         KEYX_FOUND},
        {"three-byte escape", JSON, "{\"k\":\"\\u20ac\"}", 0, "json:k", "\xe2\x82\xac", KEYX_FOUND},
        {"surrogate pair", JSON, "{\"k\":\"x\\ud83d\\ude00y\"}", 0, "json:k", "x\xf0\x9f\x98\x80y",
         KEYX_FOUND},
        {"raw UTF-8 kept", JSON, "{\"k\":\"\xd0\x9f\xd1\x80\"}", 0, "json:k", "\xd0\x9f\xd1\x80",
         KEYX_FOUND},
        {"lone high surrogate", JSON, "{\"k\":\"\\ud83dx\"}", 0, "json:k", MISS(INVALID)},
        {"lone low surrogate", JSON, "{\"k\":\"\\ude00\"}", 0, "json:k", MISS(INVALID)},
        {"high surrogate then BMP", JSON, "{\"k\":\"\\ud83d\\u0041\"}", 0, "json:k", MISS(INVALID)},
        {"escaped newline is a control byte", JSON, "{\"k\":\"a\\nb\"}", 0, "json:k",
         MISS(INVALID)},
        {"escaped NUL is a control byte", JSON, "{\"k\":\"a\\u0000b\"}", 0, "json:k",
         MISS(INVALID)},
        {"escaped member name", JSON, "{\"k\\u0065y\":\"v\"}", 0, "json:key", "v", KEYX_FOUND},
        {"first duplicate wins", JSON, "{\"k\":\"one\",\"k\":\"two\"}", 0, "json:k", "one",
         KEYX_FOUND},
        {"missing field", JSON, "{\"message\":{\"chat\":{}}}", 0, "json:message.chat.id",
         MISS(ABSENT)},
        {"path through a string", JSON, "{\"message\":\"x\"}", 0, "json:message.chat",
         MISS(ABSENT)},
        {"object target", JSON, "{\"chat\":{\"id\":1}}", 0, "json:chat", MISS(INVALID)},
        {"array target", JSON, "{\"ids\":[1,2]}", 0, "json:ids", MISS(INVALID)},
        {"boolean target", JSON, "{\"b\":true}", 0, "json:b", MISS(INVALID)},
        {"null target", JSON, "{\"b\":null}", 0, "json:b", MISS(ABSENT)},
        {"empty string", JSON, "{\"b\":\"\"}", 0, "json:b", MISS(INVALID)},
        {"top-level array", JSON, "[{\"id\":\"first\"}]", 0, "json:0.id", "first", KEYX_FOUND},
        {"whitespace around", JSON, " \r\n\t{ \"a\" : \"b\" }\r\n", 0, "json:a", "b", KEYX_FOUND},
        {"charset parameter", JSON "; charset=utf-8", "{\"a\":\"b\"}", 0, "json:a", "b",
         KEYX_FOUND},
        {"media type case", "Application/JSON", "{\"a\":\"b\"}", 0, "json:a", "b", KEYX_FOUND},
        {"+json suffix", "application/vnd.api+json", "{\"a\":\"b\"}", 0, "json:a", "b", KEYX_FOUND},
        /* broken JSON */
        {"unclosed object", JSON, "{\"a\":\"b\"", 0, "json:a", MISS(BAD_BODY)},
        {"trailing comma", JSON, "{\"a\":\"b\",}", 0, "json:a", MISS(BAD_BODY)},
        {"leading comma", JSON, ",{\"a\":\"b\"}", 0, "json:a", MISS(BAD_BODY)},
        {"double comma", JSON, "{\"a\":\"b\",,\"c\":1}", 0, "json:a", MISS(BAD_BODY)},
        {"missing comma", JSON, "[1 2]", 0, "json:0", MISS(BAD_BODY)},
        {"missing comma in object", JSON, "{\"a\":1 \"b\":2}", 0, "json:a", MISS(BAD_BODY)},
        {"missing colon", JSON, "{\"a\" \"b\"}", 0, "json:a", MISS(BAD_BODY)},
        {"double colon", JSON, "{\"a\"::\"b\"}", 0, "json:a", MISS(BAD_BODY)},
        {"key without value", JSON, "{\"a\":}", 0, "json:a", MISS(BAD_BODY)},
        {"colon in array", JSON, "[\"a\":1]", 0, "json:0", MISS(BAD_BODY)},
        {"unquoted key", JSON, "{a:\"b\"}", 0, "json:a", MISS(BAD_BODY)},
        {"single quotes", JSON, "{'a':'b'}", 0, "json:a", MISS(BAD_BODY)},
        {"bare word", JSON, "{\"a\":tru}", 0, "json:a", MISS(BAD_BODY)},
        {"leading zero", JSON, "{\"a\":01}", 0, "json:a", MISS(BAD_BODY)},
        {"bad number", JSON, "{\"a\":1.}", 0, "json:a", MISS(BAD_BODY)},
        {"bad escape", JSON, "{\"a\":\"\\x\"}", 0, "json:a", MISS(BAD_BODY)},
        {"short unicode escape", JSON, "{\"a\":\"\\u12\"}", 0, "json:a", MISS(BAD_BODY)},
        {"raw control byte in string", JSON, "{\"a\":\"b\tc\"}", 0, "json:a", MISS(BAD_BODY)},
        {"NUL byte", JSON, "{\"a\":\"b\"}\0{}", 11, "json:a", MISS(BAD_BODY)},
        {"garbage after", JSON, "{\"a\":\"b\"}x", 0, "json:a", MISS(BAD_BODY)},
        {"two documents", JSON, "{\"a\":\"b\"} {\"a\":\"c\"}", 0, "json:a", MISS(BAD_BODY)},
        {"extra bracket", JSON, "{\"a\":\"b\"}}", 0, "json:a", MISS(BAD_BODY)},
        {"mismatched brackets", JSON, "{\"a\":[\"b\"}}", 0, "json:a.0", MISS(BAD_BODY)},
        {"top-level string", JSON, "\"a\"", 0, "json:a", MISS(BAD_BODY)},
        {"top-level number", JSON, "42", 0, "json:a", MISS(BAD_BODY)},
        {"empty object is fine", JSON, "{}", 0, "json:a", MISS(ABSENT)},
        /* content type */
        {"text/plain", "text/plain", "{\"a\":\"b\"}", 0, "json:a", MISS(BAD_BODY)},
        {"no content type", NULL, "{\"a\":\"b\"}", 0, "json:a", MISS(BAD_BODY)},
        {"form is not json", FORM, "{\"a\":\"b\"}", 0, "json:a", MISS(BAD_BODY)},
        {"json prefix only", "application/jsonx", "{\"a\":\"b\"}", 0, "json:a", MISS(BAD_BODY)},
};

static const struct body_case form_cases[] = {
        {"plain field", FORM, "a=1&From=alice&b=2", 0, "form:From", "alice", KEYX_FOUND},
        {"percent and plus", FORM, "To=%2B1555+000&x=%E2%82%AC", 0, "form:To", "+1555 000",
         KEYX_FOUND},
        {"utf-8 value", FORM, "x=%E2%82%AC", 0, "form:x", "\xe2\x82\xac", KEYX_FOUND},
        {"encoded name", FORM, "conv%5Fid=c1", 0, "form:conv_id", "c1", KEYX_FOUND},
        {"first of repeated", FORM, "k=1&k=2", 0, "form:k", "1", KEYX_FOUND},
        {"whole name only", FORM, "xk=1&kx=2&k", 0, "form:k", MISS(INVALID)},
        {"name without value", FORM, "a=1&k&b=2", 0, "form:k", MISS(INVALID)},
        {"missing", FORM, "a=1&b=2", 0, "form:k", MISS(ABSENT)},
        {"empty pairs skipped", FORM, "&&k=v&", 0, "form:k", "v", KEYX_FOUND},
        {"bad percent kept", FORM, "k=100%25%zz", 0, "form:k", "100%%zz", KEYX_FOUND},
        {"control byte", FORM, "k=a%0Ab", 0, "form:k", MISS(INVALID)},
        {"charset parameter", FORM "; charset=UTF-8", "k=v", 0, "form:k", "v", KEYX_FOUND},
        {"json is not a form", JSON, "{\"k\":\"v\"}", 0, "form:k", MISS(BAD_BODY)},
        {"formjson", FORM,
         "type=x&payload=%7B%22team%22%3A%7B%22id%22%3A%22T1%22%7D%2C%22n%22%3A%5B1%5D%7D", 0,
         "formjson:payload:team.id", "T1", KEYX_FOUND},
        {"formjson plus is space", FORM, "payload={\"u\":{\"name\":\"a+b\"}}", 0,
         "formjson:payload:u.name", "a b", KEYX_FOUND},
        {"formjson missing field", FORM, "other=1", 0, "formjson:payload:team.id", MISS(ABSENT)},
        {"formjson missing path", FORM, "payload=%7B%7D", 0, "formjson:payload:team.id",
         MISS(ABSENT)},
        {"formjson broken json", FORM, "payload=%7B%22team%22", 0, "formjson:payload:team.id",
         MISS(BAD_BODY)},
        {"formjson wrong type", JSON, "{\"payload\":{}}", 0, "formjson:payload:team.id",
         MISS(BAD_BODY)},
        {"formjson then form", FORM, "channel_id=C9", 0,
         "formjson:payload:channel.id, form:channel_id", "C9", KEYX_FOUND},
};

static void run_body_case(const struct body_case *tc)
{
	static char req[TEST_REQ_MAX];
	size_t blen = tc->len != 0 ? tc->len : strlen(tc->body);
	size_t n = post(req, sizeof(req), tc->ctype, tc->body, blen);
	struct keyx_key k;
	enum keyx_miss r = extract_n(tc->key, req, n, true, &k);

	if (tc->want == NULL) {
		cr_expect_eq(r, tc->miss, "%s: got %s (%s), want %s", tc->name, keyx_miss_name(r),
		             k.buf, keyx_miss_name(tc->miss));
		cr_expect_eq(k.len, 0, "%s", tc->name);
		return;
	}
	cr_expect_eq(r, KEYX_FOUND, "%s: got %s", tc->name, keyx_miss_name(r));
	cr_expect_str_eq(k.buf, tc->want, "%s", tc->name);
	cr_expect_eq(k.len, strlen(tc->want), "%s", tc->name);
}

Test(keyx_body, json_table)
{
	for (size_t i = 0; i < ARRAY_LEN(json_cases); i++)
		run_body_case(&json_cases[i]);
}

Test(keyx_body, form_and_formjson_table)
{
	for (size_t i = 0; i < ARRAY_LEN(form_cases); i++)
		run_body_case(&form_cases[i]);
}

/*
 * Every prefix of every body: marked incomplete it is always BAD_BODY for a json source;
 * marked complete a JSON prefix never parses (a document ends with its bracket). Each
 * prefix sits in a buffer of exactly its size.
 */
static void cut_everywhere(const struct body_case *tc)
{
	static char req[TEST_REQ_MAX];
	size_t blen = tc->len != 0 ? tc->len : strlen(tc->body);
	size_t full = post(req, sizeof(req), tc->ctype, tc->body, blen);
	size_t head = full - blen;
	struct keyx_key k;

	for (size_t cut = 1; cut < blen; cut++) {
		enum keyx_miss r = extract_n(tc->key, req, head + cut, false, &k);
		cr_assert(r == KEYX_MISS_BAD_BODY || r == KEYX_MISS_ABSENT, "%s cut %zu: %s",
		          tc->name, cut, keyx_miss_name(r));
		r = extract_n(tc->key, req, head + cut, true, &k);
		bool ws_tail = strspn(tc->body + cut, " \r\n\t") == blen - cut;
		if (strncmp(tc->key, "json:", 5) == 0 && tc->want != NULL && !ws_tail)
			cr_assert_neq(r, KEYX_FOUND, "%s cut %zu found %s", tc->name, cut, k.buf);
		cr_assert(r != KEYX_FOUND || k.len == strlen(k.buf));
	}
}

Test(keyx_body, every_prefix_is_refused_or_safe)
{
	for (size_t i = 0; i < ARRAY_LEN(json_cases); i++)
		cut_everywhere(&json_cases[i]);
	for (size_t i = 0; i < ARRAY_LEN(form_cases); i++)
		cut_everywhere(&form_cases[i]);
}

Test(keyx_body, incomplete_body_is_bad_body_but_head_sources_still_work)
{
	static char req[TEST_REQ_MAX];
	const char *body = "{\"a\":\"b\"}";
	size_t n = post(req, sizeof(req), JSON, body, strlen(body));
	struct keyx_key k;

	cr_assert_eq(extract_n("json:a", req, n, false, &k), KEYX_MISS_BAD_BODY);
	cr_assert_eq(extract_n("form:a", req, n, false, &k), KEYX_MISS_BAD_BODY);
	cr_assert_eq(extract_n("json:a, query:q", req, n, false, &k), KEYX_FOUND);
	cr_assert_str_eq(k.buf, "1");
	cr_assert_eq(k.source, 1);
	n = post(req, sizeof(req), FORM, "From=a&To=b", 11);
	cr_assert_eq(extract_n("sym:form:From|form:To", req, n, false, &k), KEYX_MISS_BAD_BODY);
}

Test(keyx_body, no_body_is_absent)
{
	expect_miss("json:a",
	            "GET /x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\r\n",
	            KEYX_MISS_ABSENT);
	expect_miss("form:a, formjson:p:a", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", KEYX_MISS_ABSENT);
}

Test(keyx_body, body_source_order_is_kept)
{
	static char req[TEST_REQ_MAX];
	const char *body = "{\"a\":\"from-body\"}";
	size_t n = post(req, sizeof(req), JSON, body, strlen(body));
	struct keyx_key k;

	cr_assert_eq(extract_n("json:a, query:q", req, n, true, &k), KEYX_FOUND);
	cr_assert_str_eq(k.buf, "from-body");
	cr_assert_eq(extract_n("query:q, json:a", req, n, true, &k), KEYX_FOUND);
	cr_assert_str_eq(k.buf, "1");
	/* a json source and a form source over a JSON body: nothing there is ABSENT */
	cr_assert_eq(extract_n("json:zz, form:a", req, n, true, &k), KEYX_MISS_ABSENT);
	/* broken beats absent and invalid when nothing matched */
	n = post(req, sizeof(req), JSON, "{\"a\":", 5);
	cr_assert_eq(extract_n("header:X-None, json:a", req, n, true, &k), KEYX_MISS_BAD_BODY);
}

Test(keyx_body, oversized_json_string_is_invalid)
{
	static char req[TEST_REQ_MAX];
	static char body[KEYX_MAX + 64];
	struct keyx_key k;
	int len = snprintf(body, sizeof(body), "{\"k\":\"%0*d\"}", KEYX_MAX + 1, 0);
	size_t n = post(req, sizeof(req), JSON, body, (size_t)len);

	cr_assert_eq(extract_n("json:k", req, n, true, &k), KEYX_MISS_INVALID);
	len = snprintf(body, sizeof(body), "{\"k\":1%0*d}", KEYX_MAX, 0);
	n = post(req, sizeof(req), JSON, body, (size_t)len);
	cr_assert_eq(extract_n("json:k", req, n, true, &k), KEYX_MISS_INVALID, "long number");
	len = snprintf(body, sizeof(body), "{\"k\":%0*d}", KEYX_MAX, 1);
	n = post(req, sizeof(req), JSON, body, (size_t)len);
	cr_assert_eq(extract_n("json:k", req, n, true, &k), KEYX_MISS_BAD_BODY, "leading zeros");
	len = snprintf(body, sizeof(body), "{\"k\":\"%0*d\"}", KEYX_MAX, 0);
	n = post(req, sizeof(req), JSON, body, (size_t)len);
	cr_assert_eq(extract_n("json:k", req, n, true, &k), KEYX_FOUND);
	cr_assert_eq(k.len, KEYX_MAX);
}

/* n levels of [...] around {"k":"v"}; path 0.0...k */
static size_t nested(char *body, char *path, int n)
{
	size_t b = 0, p = 0;

	for (int i = 0; i < n; i++) {
		body[b++] = '[';
		path[p++] = '0';
		path[p++] = '.';
	}
	b += (size_t)sprintf(body + b, "{\"k\":\"v\"}");
	for (int i = 0; i < n; i++)
		body[b++] = ']';
	body[b] = '\0';
	strcpy(path + p, "k");
	return b;
}

Test(keyx_body, depth_is_capped)
{
	static char req[TEST_REQ_MAX];
	char body[512], path[512], key[600];
	struct keyx_key k;
	size_t blen = nested(body, path, JSONKEY_DEPTH_MAX - 1);
	size_t n = post(req, sizeof(req), JSON, body, blen);

	snprintf(key, sizeof(key), "json:%s", path);
	cr_assert_eq(extract_n(key, req, n, true, &k), KEYX_FOUND, "at the cap");
	cr_assert_str_eq(k.buf, "v");
	blen = nested(body, path, JSONKEY_DEPTH_MAX);
	n = post(req, sizeof(req), JSON, body, blen);
	snprintf(key, sizeof(key), "json:%s", path);
	cr_assert_eq(extract_n(key, req, n, true, &k), KEYX_MISS_BAD_BODY, "past the cap");
}

Test(keyx_body, token_count_is_capped)
{
	static char req[TEST_REQ_MAX];
	static char body[TEST_REQ_MAX / 2];
	struct keyx_key k;
	size_t b = 0;

	b += (size_t)sprintf(body, "{\"k\":\"v\",\"a\":[");
	for (int i = 0; i < JSONKEY_TOKENS_MAX; i++)
		b += (size_t)sprintf(body + b, i ? ",0" : "0");
	b += (size_t)sprintf(body + b, "]}");
	size_t n = post(req, sizeof(req), JSON, body, b);
	cr_assert_eq(extract_n("json:k", req, n, true, &k), KEYX_MISS_BAD_BODY);
}

/* ---- sym ---- */

Test(keyx_sym, both_directions_hash_alike)
{
	static char req[TEST_REQ_MAX];
	struct keyx_key a, b;
	size_t n = post(req, sizeof(req), FORM, "From=%2B15555550123&To=%2B15550001111", 37);

	cr_assert_eq(extract_n("sym:form:From|form:To", req, n, true, &a), KEYX_FOUND);
	cr_assert_str_eq(a.buf, "+15550001111|+15555550123");
	n = post(req, sizeof(req), FORM, "From=%2B15550001111&To=%2B15555550123", 37);
	cr_assert_eq(extract_n("sym:form:From|form:To", req, n, true, &b), KEYX_FOUND);
	cr_assert_str_eq(a.buf, b.buf);
	cr_assert_eq(extract_n("sym:form:To|form:From", req, n, true, &b), KEYX_FOUND);
	cr_assert_str_eq(a.buf, b.buf);
}

Test(keyx_sym, prefix_sorts_first_and_equal_values_pair)
{
	expect_key("sym:header:X-A|header:X-B",
	           "GET / HTTP/1.1\r\nHost: a\r\nX-A: abc\r\nX-B: ab\r\n\r\n", "ab|abc");
	expect_key("sym:header:X-A|header:X-B",
	           "GET / HTTP/1.1\r\nHost: a\r\nX-A: ab\r\nX-B: abc\r\n\r\n", "ab|abc");
	expect_key("sym:header:X-A|header:X-B",
	           "GET / HTTP/1.1\r\nHost: a\r\nX-A: same\r\nX-B: same\r\n\r\n", "same|same");
}

Test(keyx_sym, either_missing_is_a_miss)
{
	expect_miss("sym:header:X-A|header:X-B", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n",
	            KEYX_MISS_ABSENT);
	expect_miss("sym:header:X-A|header:X-B",
	            "GET / HTTP/1.1\r\nHost: a\r\nX-A:\r\nX-B: 2\r\n\r\n", KEYX_MISS_INVALID);
}

Test(keyx_sym, mixed_locations_and_regex)
{
	expect_key("sym:query:a|path:2", "GET /c/zz?a=yy HTTP/1.1\r\nHost: a\r\n\r\n", "yy|zz");
	expect_key("sym:path:^/c/([^/]+)|header:X-B",
	           "GET /c/k1/x HTTP/1.1\r\nHost: a\r\nX-B: k0\r\n\r\n", "k0|k1");
}

Test(keyx_sym, formjson_and_form_halves)
{
	static char req[TEST_REQ_MAX];
	const char *body = "p=%7B%22a%22:{\"b\":2}}&c=1";
	struct keyx_key k;
	size_t n = post(req, sizeof(req), FORM, body, strlen(body));

	cr_assert_eq(extract_n("sym:formjson:p:a.b|form:c", req, n, true, &k), KEYX_FOUND);
	cr_assert_str_eq(k.buf, "1|2");
}

Test(keyx_sym, joined_key_must_fit)
{
	char req[2048], v[KEYX_MAX / 2 + 1];

	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\nX-A: %s\r\nX-B: %s\r\n\r\n", v, v);
	expect_miss("sym:header:X-A|header:X-B", req, KEYX_MISS_INVALID);
}

/* ---- API ---- */

Test(keyx_api, needs_body)
{
	struct {
		const char *routing;
		bool body;
	} cases[] = {
	        {"key = header:X-C, query:q, cookie:c, path:2", false},
	        {"key = sym:header:X-A|query:b", false},
	        {"key = header:X-C, json:a", true},
	        {"key = form:a", true},
	        {"key = formjson:payload:a", true},
	        {"key = sym:query:a|form:b", true},
	        {"key = header:X-C\npreset = slack", true},
	        {"key = header:X-C\npreset = openai", true},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct rl_conf *c = conf_from(cases[i].routing);
		cr_expect_eq(keyx_needs_body(c), cases[i].body, "%s", cases[i].routing);
		conf_free(c);
	}
}

Test(keyx_api, miss_names)
{
	const char *want[KEYX_MISS_COUNT] = {"found", "absent", "invalid", "bad_body",
	                                     "no_key_event"};

	for (int i = 0; i < KEYX_MISS_COUNT; i++)
		cr_expect_str_eq(keyx_miss_name((enum keyx_miss)i), want[i]);
	cr_expect_str_eq(keyx_miss_name((enum keyx_miss)KEYX_MISS_COUNT), "unknown");
	cr_expect_str_eq(keyx_miss_name((enum keyx_miss) - 1), "unknown");
}

Test(keyx_api, jsonkey_names)
{
	const char *status[] = {"ok",     "absent",  "too_long", "bad_string",
	                        "broken", "too_big", "nomem"};
	const char *kind[] = {"string", "number", "true", "false", "null", "object", "array"};

	for (size_t i = 0; i < ARRAY_LEN(status); i++)
		cr_expect_str_eq(jsonkey_status_name((enum jsonkey_status)i), status[i]);
	cr_expect_str_eq(jsonkey_status_name((enum jsonkey_status)ARRAY_LEN(status)), "unknown");
	for (size_t i = 0; i < ARRAY_LEN(kind); i++)
		cr_expect_str_eq(jsonkey_kind_name((enum jsonkey_kind)i), kind[i]);
	cr_expect_str_eq(jsonkey_kind_name((enum jsonkey_kind)ARRAY_LEN(kind)), "unknown");
}

Test(keyx_api, jsonkey_reports_kinds_and_counts)
{
	const char *js = "{\"o\":{\"a\":1,\"b\":2},\"e\":[],\"t\":true,\"f\":false,\"n\":null}";
	struct jsonkey_doc *d;
	struct jsonkey_val v;
	char out[16];

	cr_assert_eq(jsonkey_parse(js, strlen(js), &d), JSONKEY_OK);
	cr_assert_eq(jsonkey_get(d, "o", 1, 0, &v, out, sizeof(out)), JSONKEY_OK);
	cr_expect_eq(v.kind, JSONKEY_OBJECT);
	cr_expect_eq(v.count, 2);
	cr_assert_eq(jsonkey_get(d, "e", 1, 0, &v, out, sizeof(out)), JSONKEY_OK);
	cr_expect_eq(v.kind, JSONKEY_ARRAY);
	cr_expect_eq(v.count, 0);
	cr_assert_eq(jsonkey_get(d, "t", 1, 0, &v, out, sizeof(out)), JSONKEY_OK);
	cr_expect_eq(v.kind, JSONKEY_TRUE);
	cr_expect_str_eq(out, "true");
	cr_assert_eq(jsonkey_get(d, "n", 1, 0, &v, out, sizeof(out)), JSONKEY_OK);
	cr_expect_eq(v.kind, JSONKEY_NULL);
	cr_expect_eq(jsonkey_get(d, "*.a", 3, 0, &v, out, sizeof(out)), JSONKEY_ABSENT);
	cr_assert_eq(jsonkey_get(d, "*.b", 3, JSONKEY_F_ANY_MEMBER, &v, out, sizeof(out)),
	             JSONKEY_OK);
	cr_expect_str_eq(out, "2");
	cr_expect_eq(jsonkey_get(d, "o.a", 3, 0, &v, out, 1), JSONKEY_TOO_LONG);
	jsonkey_free(d);
	cr_expect_eq(jsonkey_parse(js, 3, &d), JSONKEY_BROKEN);
	cr_expect_null(d);
}
