/*
 * presets: every fixture in tests/fixtures/bot-samples routes with its preset to the key
 * documented in research/bot-traffic.md §8; requests that must share a backend share a
 * key; the documented keyless requests are KEYX_MISS_NO_KEY_EVENT; an oversized, broken
 * or mistyped body falls back (a miss) and never crashes, wherever it is cut.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "http1.h"
#include "keyx.h"
#include "preset.h"

#define ARRAY_LEN(a)  (sizeof(a) / sizeof((a)[0]))
#define FIXTURE_DIR   RL_SRCDIR "/tests/fixtures/bot-samples"
#define BACKEND       "[backend b1]\naddress = 127.0.0.1:9001\n"
#define TEST_MAX_HEAD 16384
#define REQ_MAX       (64 * 1024)
#define REQ_SLOTS     64   /* requests built by request() that may be alive at once */
#define REQ_SLOT_MAX  4096 /* bytes per built request */
#define JSON          "application/json"
#define FORM          "application/x-www-form-urlencoded"

static struct rl_conf *conf_preset(const char *preset, const char *key)
{
	char text[1024];
	struct conf_errors errs = {0};

	snprintf(text, sizeof(text), "[routing]\n%s%s%s\npreset = %s\n" BACKEND,
	         key ? "key = " : "", key ? key : "", key ? "\n" : "", preset);
	struct rl_conf *c = conf_load_string(text, "t.ini", &errs);
	for (size_t i = 0; i < errs.n; i++)
		cr_log_error("%s", errs.msg[i]);
	conf_errors_free(&errs);
	cr_assert_not_null(c, "preset = %s must load", preset);
	return c;
}

/* Route req[0..len) with conf c; the body (after the head) is copied into a buffer of
 * exactly its size. body_cut < the body's length passes only that prefix. */
static enum keyx_miss route_cut(const struct rl_conf *c, const char *req, size_t len,
                                size_t body_cut, bool complete, struct keyx_key *out)
{
	static struct http_head h;

	cr_assert_eq(http_parse_request(req, len, TEST_MAX_HEAD, &h), HTTP_OK, "parse %.60s", req);
	size_t blen = len - h.head_len;
	if (body_cut < blen)
		blen = body_cut;
	char *body = blen > 0 ? malloc(blen) : NULL;
	if (blen > 0)
		memcpy(body, req + h.head_len, blen);
	enum keyx_miss r = keyx_extract(c, req, &h, body, blen, complete, out);
	free(body);
	return r;
}

/* Route with the preset alone ("key =" empty: no configured source before it). */
static enum keyx_miss route(const char *preset, const char *req, size_t len, struct keyx_key *out)
{
	struct rl_conf *c = conf_preset(preset, "");
	enum keyx_miss r = route_cut(c, req, len, SIZE_MAX, true, out);

	conf_free(c);
	return r;
}

/* The key req routes to with preset (asserting it has one). */
static void expect_key(const char *preset, const char *req, const char *want)
{
	struct keyx_key k;
	enum keyx_miss r = route(preset, req, strlen(req), &k);

	cr_assert_eq(r, KEYX_FOUND, "%s: %s on %.200s", preset, keyx_miss_name(r), req);
	cr_assert_str_eq(k.buf, want, "%s on %.200s", preset, req);
	cr_assert_eq(k.source, -1, "the preset, not a configured source");
	cr_assert_geq(k.preset_row, 0);
}

static void expect_miss(const char *preset, const char *req, enum keyx_miss why)
{
	struct keyx_key k;
	enum keyx_miss r = route(preset, req, strlen(req), &k);

	cr_assert_eq(r, why, "%s: got %s (%s), want %s on %.200s", preset, keyx_miss_name(r), k.buf,
	             keyx_miss_name(why), req);
	cr_assert_eq(k.len, 0);
}

/*
 * A request: "METHOD TARGET", Content-Type (NULL: none), extra header lines, body. The
 * text lives in a ring of REQ_SLOTS buffers, so a table may hold that many at once.
 */
static const char *request(const char *line, const char *ctype, const char *fields,
                           const char *body)
{
	static char pool[REQ_SLOTS][REQ_SLOT_MAX];
	static size_t next;
	char *req = pool[next++ % REQ_SLOTS];
	char ct[128] = "";

	if (ctype != NULL)
		snprintf(ct, sizeof(ct), "Content-Type: %s\r\n", ctype);
	int n = snprintf(req, REQ_SLOT_MAX,
	                 "%s HTTP/1.1\r\nHost: bots.example.com\r\n%s%sContent-Length: %zu\r\n"
	                 "\r\n%s",
	                 line, ct, fields ? fields : "", strlen(body), body);
	cr_assert(n > 0 && n < REQ_SLOT_MAX, "request too long for the test");
	return req;
}

static const char *json_post(const char *target, const char *body)
{
	char line[256];

	snprintf(line, sizeof(line), "POST %s", target);
	return request(line, JSON, NULL, body);
}

/* application/x-www-form-urlencoded: every byte but unreserved ones as %XX. */
static void form_encode(const char *s, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		cr_assert(o + 4 < size);
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-_.~", ch) != NULL) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 0xf];
		}
	}
	out[o] = '\0';
}

/* A Slack interactivity request: payload=<json>. */
static const char *slack_payload(const char *json)
{
	static char body[REQ_SLOT_MAX];

	strcpy(body, "payload=");
	form_encode(json, body + strlen(body), sizeof(body) - strlen(body));
	return request("POST /slack/interactive", FORM, NULL, body);
}

/* ---- the fixture corpus ---- */

struct fixture {
	const char *file;
	const char *preset;
	const char *key; /* NULL: a documented no-key request */
	const char *loc; /* the matching location, as research §8 names it */
};

static const struct fixture fixtures[] = {
        {"telegram-message.http", "telegram", "5550000001", "json:message.chat.id"},
        {"slack-event-message.http", "slack", "T0FAKE0001/C0FAKE0001", "json:event.channel"},
        {"slack-slash-command.http", "slack", "T0FAKE0001/C0FAKE0001", "form:channel_id"},
        {"discord-ping.http", "discord", NULL, NULL},
        {"discord-slash-command.http", "discord", "1500000000000000001", "json:channel.id"},
        {"botframework-teams-message.http", "botframework",
         "msteams/19:fakechannel0000000000000000000000@thread.tacv2", "json:conversation.id"},
        {"twilio-sms.http", "twilio", "+15550001111|+15555550123", "sym:form:From|form:To"},
        {"whatsapp-cloud-message.http", "whatsapp-cloud", "100000000000003/15555550125",
         "json:entry.0.changes.0.value.messages.0.from"},
        {"messenger-message.http", "messenger", "100000000000004/2000000000000001",
         "json:entry.0.messaging.0.sender.id"},
        {"viber-message.http", "viber", "FAKEviberUser00000000A==", "json:sender.id"},
        {"intercom-user-replied.http", "intercom", "100000000001", "json:data.item.id"},
        {"rasa-rest-message.http", "rasa", "conv-7f3a9c2e-fake", "json:sender"},
        {"openai-chat-stream.http", "openai", "conv-fake-0001", "header:X-Session-Id"},
};

static char *load(const char *file, size_t *len)
{
	char path[1024];
	FILE *f;
	char *buf = malloc(REQ_MAX);

	snprintf(path, sizeof(path), "%s/%s", FIXTURE_DIR, file);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "open %s", path);
	cr_assert_not_null(buf);
	*len = fread(buf, 1, REQ_MAX - 1, f);
	cr_assert(feof(f), "%s is larger than the test buffer", path);
	fclose(f);
	buf[*len] = '\0';
	return buf;
}

static const struct fixture *fixture_named(const char *file)
{
	for (size_t i = 0; i < ARRAY_LEN(fixtures); i++)
		if (strcmp(fixtures[i].file, file) == 0)
			return &fixtures[i];
	return NULL;
}

Test(fixtures, every_file_is_in_the_table_and_back)
{
	DIR *d = opendir(FIXTURE_DIR);
	size_t seen = 0;

	cr_assert_not_null(d, "%s", FIXTURE_DIR);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		size_t n = strlen(e->d_name);
		if (n < 5 || strcmp(e->d_name + n - 5, ".http") != 0)
			continue;
		cr_expect_not_null(fixture_named(e->d_name), "%s has no expected key", e->d_name);
		seen++;
	}
	closedir(d);
	cr_expect_eq(seen, ARRAY_LEN(fixtures), "every table row has its file");
}

static void check_fixture(const struct fixture *fx)
{
	struct rl_conf *c = conf_preset(fx->preset, NULL);
	const struct preset *p = preset_find(fx->preset);
	struct keyx_key k;
	size_t len;
	char *req = load(fx->file, &len);
	char loc[512];
	static struct http_head h;

	cr_assert_eq(http_parse_request(req, len, TEST_MAX_HEAD, &h), HTTP_OK, "%s", fx->file);
	cr_assert_eq(h.content_length, len - h.head_len, "%s: Content-Length", fx->file);
	enum keyx_miss r = route_cut(c, req, len, SIZE_MAX, true, &k);
	if (fx->key == NULL) {
		cr_expect_eq(r, KEYX_MISS_NO_KEY_EVENT, "%s: %s", fx->file, keyx_miss_name(r));
	} else {
		cr_expect_eq(r, KEYX_FOUND, "%s: %s", fx->file, keyx_miss_name(r));
		cr_expect_str_eq(k.buf, fx->key, "%s", fx->file);
		cr_expect_eq(k.len, strlen(fx->key));
		cr_assert(k.preset_row >= 0 && (size_t)k.preset_row < p->nrows, "%s", fx->file);
		preset_row_format(&p->rows[k.preset_row], loc, sizeof(loc));
		cr_expect_str_eq(loc, fx->loc, "%s", fx->file);
	}
	free(req);
	conf_free(c);
}

Test(fixtures, each_routes_to_its_documented_key)
{
	for (size_t i = 0; i < ARRAY_LEN(fixtures); i++)
		check_fixture(&fixtures[i]);
}

/* The key a fixture (with extra header lines inserted after Host) routes to. */
static void fixture_key(const char *file, const char *preset, const char *extra, struct keyx_key *k)
{
	size_t len;
	char *req = load(file, &len);
	static char copy[REQ_MAX];
	const char *host = strstr(req, "\r\nHost:");
	const char *after = strstr(host + 2, "\r\n") + 2;
	size_t at = (size_t)(after - req);

	cr_assert(len + strlen(extra) < sizeof(copy));
	memcpy(copy, req, at);
	strcpy(copy + at, extra);
	memcpy(copy + at + strlen(extra), after, len - at);
	len += strlen(extra);
	cr_assert_eq(route(preset, copy, len, k), KEYX_FOUND, "%s", file);
	free(req);
}

Test(fixtures, slack_event_command_action_and_retry_share_a_key)
{
	struct keyx_key ev, cmd, retry, action;
	const char *block_action =
	        "{\"type\":\"block_actions\",\"user\":{\"id\":\"U0FAKE0002\",\"team_id\":"
	        "\"T0FAKE0001\"},\"team\":{\"id\":\"T0FAKE0001\",\"domain\":\"fake-workspace\"},"
	        "\"container\":{\"type\":\"message\",\"message_ts\":\"1735725600.000200\","
	        "\"channel_id\":\"C0FAKE0001\",\"is_ephemeral\":false},\"trigger_id\":"
	        "\"0000000000002.0000000001.fake\",\"channel\":{\"id\":\"C0FAKE0001\",\"name\":"
	        "\"support\"},\"actions\":[{\"action_id\":\"approve\",\"type\":\"button\","
	        "\"value\":\"yes & more\"}]}";

	fixture_key("slack-event-message.http", "slack", "", &ev);
	fixture_key("slack-slash-command.http", "slack", "", &cmd);
	fixture_key("slack-event-message.http", "slack",
	            "X-Slack-Retry-Num: 1\r\nX-Slack-Retry-Reason: http_timeout\r\n", &retry);
	cr_assert_eq(route("slack", slack_payload(block_action),
	                   strlen(slack_payload(block_action)), &action),
	             KEYX_FOUND);
	cr_expect_str_eq(ev.buf, "T0FAKE0001/C0FAKE0001");
	cr_expect_str_eq(cmd.buf, ev.buf);
	cr_expect_str_eq(retry.buf, ev.buf);
	cr_expect_str_eq(action.buf, ev.buf);
}

Test(fixtures, whatsapp_message_and_its_status_share_a_key)
{
	struct keyx_key msg;

	fixture_key("whatsapp-cloud-message.http", "whatsapp-cloud", "", &msg);
	expect_key("whatsapp-cloud",
	           json_post("/meta/whatsapp",
	                     "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":"
	                     "\"100000000000002\",\"changes\":[{\"value\":{\"messaging_product\":"
	                     "\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550001111\","
	                     "\"phone_number_id\":\"100000000000003\"},\"statuses\":[{\"id\":"
	                     "\"wamid.FAKE01\",\"status\":\"read\",\"timestamp\":\"1735725900\","
	                     "\"recipient_id\":\"15555550125\"}]},\"field\":\"messages\"}]}]}"),
	           msg.buf);
}

Test(fixtures, twilio_reply_status_shares_the_inbound_key)
{
	struct keyx_key in;

	fixture_key("twilio-sms.http", "twilio", "", &in);
	expect_key("twilio",
	           request("POST /twilio/status", FORM, NULL,
	                   "MessageSid=SM2&MessageStatus=delivered&From=%2B15550001111"
	                   "&To=%2B15555550123&AccountSid=AC1"),
	           in.buf);
}

/* ---- the documented keyless requests ---- */

Test(nokey, documented_cases)
{
	struct {
		const char *preset;
		const char *req;
	} cases[] = {
	        {"slack",
	         json_post("/slack/events", "{\"token\":\"FAKE\",\"challenge\":\"3eZbrw1aBm2r\","
	                                    "\"type\":\"url_verification\"}")},
	        {"discord",
	         json_post("/discord", "{\"type\":1,\"id\":\"1\",\"user\":{\"id\":\"9\"}}")},
	        {"whatsapp-cloud", request("GET /meta/whatsapp?hub.mode=subscribe&hub.challenge="
	                                   "1158201444&hub.verify_token=fake",
	                                   NULL, NULL, "")},
	        {"messenger", request("GET /meta/messenger?hub.mode=subscribe&hub.challenge=7&"
	                              "hub.verify_token=fake",
	                              NULL, NULL, "")},
	        {"line", json_post("/line", "{\"destination\":\"U00000000000000000000000000000fa"
	                                    "ke\",\"events\":[]}")},
	        {"viber", json_post("/viber", "{\"event\":\"webhook\",\"timestamp\":1457764197627,"
	                                      "\"message_token\":241256543215}")},
	        {"intercom",
	         json_post("/intercom", "{\"type\":\"notification_event\",\"topic\":"
	                                "\"ping\",\"data\":{\"item\":{\"type\":\"ping\","
	                                "\"message\":\"hi\"}}}")},
	        {"telegram",
	         json_post("/tg", "{\"update_id\":1,\"poll\":{\"id\":\"5\",\"question\":"
	                          "\"q\",\"options\":[]}}")},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		expect_miss(cases[i].preset, cases[i].req, KEYX_MISS_NO_KEY_EVENT);
}

Test(nokey, near_misses_are_not_keyless)
{
	/* a POST with hub.mode is not Meta's GET verification */
	expect_miss("messenger", request("POST /m?hub.mode=subscribe", JSON, NULL, "{}"),
	            KEYX_MISS_ABSENT);
	/* a GET without hub.mode has nothing to route by */
	expect_miss("whatsapp-cloud", request("GET /meta/whatsapp", NULL, NULL, ""),
	            KEYX_MISS_ABSENT);
	/* LINE with an event routes; Discord type 2 routes */
	expect_key("line",
	           json_post("/line", "{\"destination\":\"Ud\",\"events\":[{\"type\":\"message\","
	                              "\"source\":{\"type\":\"user\",\"userId\":\"Uu\"}}]}"),
	           "Ud/Uu");
	expect_key("discord", json_post("/d", "{\"type\":2,\"user\":{\"id\":\"42\"}}"), "42");
	/* "type" as a string "1" in Slack is not url_verification */
	expect_key("slack",
	           json_post("/s", "{\"type\":\"event_callback\",\"team_id\":\"T\","
	                           "\"event\":{\"channel\":\"C\"}}"),
	           "T/C");
}

/* ---- fallbacks inside each preset (§7 order) ---- */

struct alt_case {
	const char *preset;
	const char *req;
	const char *key;
};

Test(presets, fallback_locations)
{
	struct alt_case cases[] = {
	        {"telegram",
	         json_post("/tg", "{\"update_id\":2,\"inline_query\":{\"id\":\"1\","
	                          "\"from\":{\"id\":5550000002},\"query\":\"x\"}}"),
	         "5550000002"},
	        {"telegram",
	         json_post("/tg", "{\"update_id\":3,\"callback_query\":{\"id\":\"1\","
	                          "\"from\":{\"id\":7},\"inline_message_id\":\"i\"}}"),
	         "7"},
	        {"telegram",
	         json_post("/tg", "{\"update_id\":4,\"callback_query\":{\"from\":{\"id\":"
	                          "7},\"message\":{\"chat\":{\"id\":-1001234567890}}}}"),
	         "-1001234567890"},
	        {"telegram",
	         json_post("/tg", "{\"update_id\":5,\"poll_answer\":{\"poll_id\":\"p\","
	                          "\"user\":{\"id\":8}}}"),
	         "8"},
	        {"telegram",
	         json_post("/tg", "{\"update_id\":6,\"future_update\":{\"chat\":{\"id\":"
	                          "99},\"from\":{\"id\":1}}}"),
	         "99"},
	        {"telegram",
	         json_post("/tg", "{\"update_id\":6,\"future_query\":{\"from\":{\"id\":"
	                          "12}}}"),
	         "12"},
	        {"slack",
	         json_post("/s", "{\"team_id\":\"T1\",\"event\":{\"type\":\"reaction_added\","
	                         "\"user\":\"U1\",\"item\":{\"type\":\"message\",\"channel\":"
	                         "\"C7\",\"ts\":\"1\"}}}"),
	         "T1/C7"},
	        {"slack",
	         json_post("/s", "{\"team_id\":\"T1\",\"event\":{\"type\":\"channel_created\","
	                         "\"channel\":{\"id\":\"C8\",\"name\":\"x\"}}}"),
	         "T1/C8"},
	        {"slack",
	         json_post("/s", "{\"team_id\":\"T1\",\"event\":{\"type\":\"user_status\","
	                         "\"user\":\"U9\"}}"),
	         "T1/U9"},
	        {"slack",
	         json_post("/s", "{\"authorizations\":[{\"team_id\":\"T2\"}],\"event\":{"
	                         "\"channel\":\"C1\"}}"),
	         "T2/C1"},
	        {"slack",
	         slack_payload("{\"type\":\"view_submission\",\"team\":{\"id\":\"T3\"},"
	                       "\"user\":{\"id\":\"U3\"},\"view\":{\"id\":\"V1\"}}"),
	         "T3/U3"},
	        {"slack",
	         slack_payload("{\"type\":\"block_actions\",\"team\":{\"id\":\"T3\"},"
	                       "\"user\":{\"id\":\"U3\"},\"container\":{\"channel_id\":"
	                       "\"C3\"}}"),
	         "T3/C3"},
	        {"discord",
	         json_post("/d", "{\"type\":2,\"channel_id\":\"55\",\"member\":{\"user\":"
	                         "{\"id\":\"6\"}}}"),
	         "55"},
	        {"discord", json_post("/d", "{\"type\":3,\"member\":{\"user\":{\"id\":\"6\"}}}"),
	         "6"},
	        {"botframework",
	         json_post("/api/messages", "{\"channelId\":\"webchat\","
	                                    "\"conversation\":{\"id\":\"abc;x=1\"}}"),
	         "webchat/abc;x=1"},
	        {"botframework",
	         json_post("/api/messages", "{\"channelId\":\"directline\","
	                                    "\"from\":{\"id\":\"u1\"}}"),
	         "directline/u1"},
	        {"twilio", request("POST /t", FORM, NULL, "From=%2B1&To=%2B2&ConversationSid=CH1"),
	         "CH1"},
	        {"twilio", request("POST /voice", FORM, NULL, "CallSid=CA1&AccountSid=AC1"), "CA1"},
	        {"messenger",
	         json_post("/m", "{\"object\":\"page\",\"entry\":[{\"id\":\"P1\","
	                         "\"standby\":[{\"sender\":{\"id\":\"U5\"}}]}]}"),
	         "P1/U5"},
	        {"line",
	         json_post("/line", "{\"destination\":\"Ud\",\"events\":[{\"source\":{"
	                            "\"type\":\"group\",\"groupId\":\"Cg\",\"userId\":"
	                            "\"Uu\"}}]}"),
	         "Ud/Cg"},
	        {"line",
	         json_post("/line", "{\"destination\":\"Ud\",\"events\":[{\"source\":{"
	                            "\"type\":\"room\",\"roomId\":\"Rr\"}}]}"),
	         "Ud/Rr"},
	        {"viber", json_post("/v", "{\"event\":\"subscribed\",\"user\":{\"id\":\"vu1\"}}"),
	         "vu1"},
	        {"viber",
	         json_post("/v", "{\"event\":\"delivered\",\"user_id\":\"vu2\","
	                         "\"message_token\":5800000000000000001}"),
	         "vu2"},
	        {"sunshine",
	         json_post("/sc", "{\"app\":{\"id\":\"A1\"},\"webhook\":{\"id\":\"w\","
	                          "\"version\":\"v2\"},\"events\":[{\"id\":\"e1\","
	                          "\"type\":\"conversation:message\",\"payload\":{"
	                          "\"conversation\":{\"id\":\"C1\",\"type\":\"personal\"},"
	                          "\"message\":{\"id\":\"m\"}}}]}"),
	         "A1/C1"},
	        {"sunshine",
	         json_post("/sc", "{\"app\":{\"id\":\"A1\"},\"events\":[{\"payload\":{"
	                          "\"user\":{\"id\":\"U1\"}}}]}"),
	         "A1/U1"},
	        {"rasa", json_post("/conversations/conv-9/messages", "{\"text\":\"hi\"}"),
	         "conv-9"},
	        {"botpress",
	         json_post("/api/v1/bots/mybot/converse/user-42", "{\"type\":\"text\"}"),
	         "mybot/user-42"},
	        {"botpress",
	         request("POST /v1/chat/messages", JSON, "x-bot-id: bot-9\r\n",
	                 "{\"conversationId\":\"conv-1\",\"userId\":\"u\"}"),
	         "bot-9/conv-1"},
	        {"openai",
	         json_post("/v1/chat/completions", "{\"model\":\"m\",\"prompt_cache_key\":"
	                                           "\"pck-1\",\"user\":\"u\"}"),
	         "pck-1"},
	        {"openai", json_post("/v1/responses", "{\"conversation\":\"conv_abc\"}"),
	         "conv_abc"},
	        {"openai", json_post("/v1/responses", "{\"conversation\":{\"id\":\"conv_obj\"}}"),
	         "conv_obj"},
	        {"openai", json_post("/v1/threads/thread_1/runs", "{\"assistant_id\":\"a\"}"),
	         "thread_1"},
	        {"openai", json_post("/v1/chat/completions", "{\"user\":\"legacy-user\"}"),
	         "legacy-user"},
	        {"openai",
	         request("POST /v1/chat/completions", JSON, "X-Conversation-Id: hc\r\n",
	                 "{\"prompt_cache_key\":\"later\"}"),
	         "hc"},
	        {"generic", request("GET /ws?conversation_id=c%2D1", NULL, NULL, ""), "c-1"},
	        {"generic", request("GET /ws", NULL, "Cookie: a=1; conv=ck\r\n", ""), "ck"},
	        {"generic", json_post("/x", "{\"session_id\":\"s1\"}"), "s1"},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		expect_key(cases[i].preset, cases[i].req, cases[i].key);
}

Test(presets, messenger_echo_belongs_to_the_recipient)
{
	const char *user = json_post(
	        "/m",
	        "{\"object\":\"page\",\"entry\":[{\"id\":\"P1\",\"messaging\":[{\"sender\":"
	        "{\"id\":\"U1\"},\"recipient\":{\"id\":\"P1\"},\"message\":{\"mid\":\"m1\"}}]}]}");
	expect_key("messenger", user, "P1/U1");
	const char *echo = json_post(
	        "/m", "{\"object\":\"page\",\"entry\":[{\"id\":\"P1\",\"messaging\":[{\"sender\":"
	              "{\"id\":\"P1\"},\"recipient\":{\"id\":\"U1\"},\"message\":{\"is_echo\":true,"
	              "\"mid\":\"m2\"}}]}]}");
	expect_key("messenger", echo, "P1/U1");
}

Test(presets, configured_key_comes_first)
{
	struct rl_conf *c = conf_preset("telegram", "header:X-Conv");
	size_t len;
	char *req = load("telegram-message.http", &len);
	struct keyx_key k;
	static char with[REQ_MAX];

	cr_assert_eq(route_cut(c, req, len, SIZE_MAX, true, &k), KEYX_FOUND);
	cr_expect_str_eq(k.buf, "5550000001");
	cr_expect_eq(k.source, -1);
	/* the same request with the configured header: the header wins */
	const char *nl = strstr(req, "\r\n") + 2;
	size_t at = (size_t)(nl - req);
	memcpy(with, req, at);
	strcpy(with + at, "X-Conv: explicit\r\n");
	memcpy(with + strlen(with), nl, len - at + 1);
	cr_assert_eq(route_cut(c, with, strlen(with), SIZE_MAX, true, &k), KEYX_FOUND);
	cr_expect_str_eq(k.buf, "explicit");
	cr_expect_eq(k.source, 0);
	cr_expect_eq(k.preset_row, -1);
	free(req);
	conf_free(c);
}

/* ---- fallback: oversized, broken, mistyped bodies ---- */

Test(fallback, body_over_max_key_body_is_bad_body)
{
	for (size_t i = 0; i < ARRAY_LEN(fixtures); i++) {
		const struct fixture *fx = &fixtures[i];
		struct rl_conf *c = conf_preset(fx->preset, NULL);
		struct keyx_key k;
		size_t len;
		char *req = load(fx->file, &len);
		enum keyx_miss r = route_cut(c, req, len, SIZE_MAX, false, &k);
		/* the OpenAI key is in a header, so a partial body does not matter */
		enum keyx_miss want =
		        strcmp(fx->preset, "openai") == 0 ? KEYX_FOUND : KEYX_MISS_BAD_BODY;
		cr_expect_eq(r, want, "%s: %s", fx->file, keyx_miss_name(r));
		free(req);
		conf_free(c);
	}
}

Test(fallback, broken_json_is_bad_body)
{
	for (size_t i = 0; i < ARRAY_LEN(fixtures); i++) {
		const struct fixture *fx = &fixtures[i];
		struct rl_conf *c = conf_preset(fx->preset, NULL);
		struct keyx_key k;
		size_t len;
		char *req = load(fx->file, &len);
		if (strstr(req, "Content-Type: application/json") == NULL ||
		    strcmp(fx->preset, "openai") == 0) {
			free(req);
			conf_free(c);
			continue;
		}
		/* cut off the closing brace, but call the body complete */
		cr_expect_eq(route_cut(c, req, len - 1, SIZE_MAX, true, &k), KEYX_MISS_BAD_BODY,
		             "%s", fx->file);
		free(req);
		conf_free(c);
	}
}

Test(fallback, wrong_content_type_is_bad_body)
{
	expect_miss("telegram",
	            request("POST /tg", "text/plain", NULL, "{\"message\":{\"chat\":{\"id\":1}}}"),
	            KEYX_MISS_BAD_BODY);
	expect_miss("telegram",
	            request("POST /tg", NULL, NULL, "{\"message\":{\"chat\":{\"id\":1}}}"),
	            KEYX_MISS_BAD_BODY);
	expect_miss("twilio", request("POST /t", JSON, NULL, "{\"From\":\"a\",\"To\":\"b\"}"),
	            KEYX_MISS_BAD_BODY);
	/* Slack reads both types: a JSON body with no key is simply absent */
	expect_miss("slack", json_post("/s", "{\"type\":\"event_callback\"}"), KEYX_MISS_ABSENT);
}

Test(fallback, missing_and_invalid_keys)
{
	expect_miss("telegram", json_post("/tg", "{\"update_id\":1}"), KEYX_MISS_ABSENT);
	expect_miss("viber", json_post("/v", "{\"event\":\"message\",\"sender\":{\"id\":\"\"}}"),
	            KEYX_MISS_INVALID);
	expect_miss("intercom", json_post("/i", "{\"data\":{\"item\":{\"id\":{\"x\":1}}}}"),
	            KEYX_MISS_INVALID);
}

/* Every fixture under every preset, cut at every byte, complete or not: no crash, no
 * read past the body (ASan), and any key found is a clean header value. */
Test(fallback, every_cut_of_every_fixture_under_every_preset)
{
	for (size_t p = 0; p < preset_count(); p++) {
		struct rl_conf *c = conf_preset(preset_at(p)->name, NULL);
		for (size_t i = 0; i < ARRAY_LEN(fixtures); i++) {
			size_t len;
			char *req = load(fixtures[i].file, &len);
			char *end = strstr(req, "\r\n\r\n") + 4;
			size_t blen = len - (size_t)(end - req);
			for (size_t cut = 0; cut <= blen; cut++) {
				for (int complete = 0; complete < 2; complete++) {
					struct keyx_key k;
					enum keyx_miss r =
					        route_cut(c, req, len, cut, complete, &k);
					cr_assert(r >= KEYX_FOUND && r < KEYX_MISS_COUNT);
					if (r != KEYX_FOUND)
						continue;
					cr_assert(k.len <= KEYX_MAX && k.len == strlen(k.buf));
					for (size_t b = 0; b < k.len; b++)
						cr_assert((unsigned char)k.buf[b] >= 0x20 &&
						          k.buf[b] != 0x7f);
				}
			}
			free(req);
		}
		conf_free(c);
	}
}

/* ---- the tables themselves ---- */

Test(tables, every_preset_loads_and_every_row_is_valid_grammar)
{
	const char *names[] = {"telegram", "slack",          "discord",   "botframework",
	                       "twilio",   "whatsapp-cloud", "messenger", "line",
	                       "viber",    "sunshine",       "intercom",  "rasa",
	                       "botpress", "openai",         "generic"};

	cr_assert_eq(preset_count(), ARRAY_LEN(names));
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		const struct preset *p = preset_find(names[i]);
		cr_assert_not_null(p, "%s", names[i]);
		cr_expect_eq(preset_at(i), p);
		cr_expect(preset_needs_body(p), "%s reads the body", names[i]);
		conf_free(conf_preset(names[i], NULL));
		for (size_t j = 0; j < p->nrows; j++) {
			const struct preset_row *r = &p->rows[j];
			char text[512], why[256];
			struct rl_keysrc src;
			preset_row_format(r, text, sizeof(text));
			cr_expect_eq(conf_parse_keysrc(text, &src, why, sizeof(why)), 0,
			             "%s: %s: %s", names[i], text, why);
			cr_expect_eq(src.type, r->type, "%s: %s", names[i], text);
			conf_keysrc_free(&src);
			cr_expect(r->type != RL_KEYSRC_PATH_REGEX || preset_regex(r) != NULL, "%s",
			          text);
			cr_expect((r->role == PRESET_NOKEY) == (r->test != PRESET_TEST_NONE), "%s",
			          text);
		}
	}
	cr_expect_null(preset_find("nope"));
	cr_expect_null(preset_find(""));
	cr_expect_null(preset_find(NULL));
	cr_expect_null(preset_at(preset_count()));
}

Test(tables, role_names)
{
	cr_expect_str_eq(preset_role_name(PRESET_NOKEY), "nokey");
	cr_expect_str_eq(preset_role_name(PRESET_SCOPE), "scope");
	cr_expect_str_eq(preset_role_name(PRESET_KEY), "key");
	cr_expect_str_eq(preset_role_name((enum preset_role)3), "unknown");
}
