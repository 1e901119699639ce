/*
 * preset — the built-in key tables, one per bot platform (research/bot-traffic.md §7).
 *
 * Each table lists its rows in the order they are tried within a role; NOKEY rows are
 * checked before KEY rows (a Discord PING carries user.id, yet it has no conversation).
 * Options marked "optional" in the research (Discord guild_id, Twilio AccountSid, Intercom
 * app_id, the OpenAI tenant hash, Slack enterprise_id) are left out: the fixture keys in
 * §8 are computed without them. Variants (telegram-topic, slack-thread, ...) are not
 * presets here.
 */
#include "preset.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define PRESET_REGEX_MAX 8 /* path regexes across all tables */

/* One row per line, as the table in research §7 reads. */
/* clang-format off */
#define ROW(r, t, a, ...) {.role = (r), .type = RL_KEYSRC_##t, .arg = (a), __VA_ARGS__}
#define KEY(t, a, ...)           ROW(PRESET_KEY, t, a, __VA_ARGS__)
#define SCOPE(t, a, ...)         ROW(PRESET_SCOPE, t, a, __VA_ARGS__)
#define NOKEY_EQ(t, a, v)        ROW(PRESET_NOKEY, t, a, .test = PRESET_TEST_EQUALS, .value = (v))
#define NOKEY_IF(t, a, tst, ...) ROW(PRESET_NOKEY, t, a, .test = PRESET_TEST_##tst, __VA_ARGS__)
#define JKEY(a)                  KEY(JSON, a)
#define JSCOPE(a)                SCOPE(JSON, a)
#define JANY(a)                  KEY(JSON, a, .flags = PRESET_F_ANY_MEMBER)
#define META_VERIFY              NOKEY_IF(QUERY, "hub.mode", PRESENT, .method = "GET")

/* Every chat-scoped update carries <update>.chat.id; at most one update field is set. */
static const struct preset_row telegram[] = {
	NOKEY_IF(JSON, "poll", PRESENT),
	JKEY("message.chat.id"),
	JKEY("edited_message.chat.id"),
	JKEY("channel_post.chat.id"),
	JKEY("edited_channel_post.chat.id"),
	JKEY("business_message.chat.id"),
	JKEY("edited_business_message.chat.id"),
	JKEY("deleted_business_messages.chat.id"),
	JKEY("message_reaction.chat.id"),
	JKEY("message_reaction_count.chat.id"),
	JKEY("my_chat_member.chat.id"),
	JKEY("chat_member.chat.id"),
	JKEY("chat_join_request.chat.id"),
	JKEY("chat_boost.chat.id"),
	JKEY("removed_chat_boost.chat.id"),
	JKEY("callback_query.message.chat.id"),
	JKEY("callback_query.from.id"),
	JKEY("inline_query.from.id"),
	JKEY("chosen_inline_result.from.id"),
	JKEY("shipping_query.from.id"),
	JKEY("pre_checkout_query.from.id"),
	JKEY("poll_answer.user.id"),
	JKEY("purchased_paid_media.from.id"),
	/* update types newer than this table: the same fields under any member */
	JANY("*.chat.id"),
	JANY("*.message.chat.id"),
	JANY("*.from.id"),
	JANY("*.user.id"),
};

/* Events (JSON), slash commands (form) and interactivity (form field payload=JSON) of
 * one channel share one key, so one backend sees the whole conversation. */
static const struct preset_row slack[] = {
	NOKEY_EQ(JSON, "type", "url_verification"),
	JSCOPE("team_id"),
	JSCOPE("authorizations.0.team_id"),
	SCOPE(FORMJSON, "payload", .arg2 = "team.id"),
	SCOPE(FORM, "team_id"),
	JKEY("event.channel"),
	JKEY("event.item.channel"),
	JKEY("event.channel.id"),
	JKEY("event.user"),
	KEY(FORMJSON, "payload", .arg2 = "channel.id"),
	KEY(FORMJSON, "payload", .arg2 = "container.channel_id"),
	KEY(FORMJSON, "payload", .arg2 = "user.id"),
	KEY(FORM, "channel_id"),
	KEY(FORM, "user_id"),
};

static const struct preset_row discord[] = {
	NOKEY_EQ(JSON, "type", "1"),
	JKEY("channel.id"),
	JKEY("channel_id"),
	JKEY("user.id"),
	JKEY("member.user.id"),
};

static const struct preset_row botframework[] = {
	JSCOPE("channelId"),
	KEY(JSON, "conversation.id", .flags = PRESET_F_CUT_MESSAGEID),
	JKEY("from.id"),
	JKEY("recipient.id"),
};

/* Both directions of an exchange (and their status callbacks) share the sorted pair. */
static const struct preset_row twilio[] = {
	KEY(FORM, "ConversationSid"),
	KEY(SYM, "form:From", .arg2 = "form:To"),
	KEY(FORM, "CallSid"),
};

static const struct preset_row whatsapp_cloud[] = {
	META_VERIFY,
	JSCOPE("entry.0.changes.0.value.metadata.phone_number_id"),
	JKEY("entry.0.changes.0.value.messages.0.from"),
	JKEY("entry.0.changes.0.value.statuses.0.recipient_id"),
	JKEY("entry.0.changes.0.value.contacts.0.wa_id"),
};

/* A message the page sent (is_echo) belongs to its recipient's conversation. */
static const struct preset_row messenger[] = {
	META_VERIFY,
	JSCOPE("entry.0.id"),
	KEY(JSON, "entry.0.messaging.0.recipient.id",
	    .when = "entry.0.messaging.0.message.is_echo", .value = "true"),
	JKEY("entry.0.messaging.0.sender.id"),
	JKEY("entry.0.standby.0.sender.id"),
};

static const struct preset_row line[] = {
	NOKEY_IF(JSON, "events", EMPTY),
	JSCOPE("destination"),
	JKEY("events.0.source.groupId"),
	JKEY("events.0.source.roomId"),
	JKEY("events.0.source.userId"),
};

static const struct preset_row viber[] = {
	NOKEY_EQ(JSON, "event", "webhook"),
	JKEY("sender.id"),
	JKEY("user.id"),
	JKEY("user_id"),
};

static const struct preset_row sunshine[] = {
	JSCOPE("app.id"),
	JKEY("events.0.payload.conversation.id"),
	JKEY("events.0.payload.user.id"),
};

static const struct preset_row intercom[] = {
	NOKEY_EQ(JSON, "topic", "ping"),
	JKEY("data.item.id"),
};

static const struct preset_row rasa[] = {
	JKEY("sender"),
	KEY(PATH_REGEX, "^/conversations/([^/]+)/"),
};

static const struct preset_row botpress[] = {
	SCOPE(PATH_REGEX, "^/api/v1/bots/([^/]+)/"),
	SCOPE(HEADER, "x-bot-id"),
	KEY(PATH_REGEX, "/converse/([^/]+)"),
	JKEY("conversationId"),
};

static const struct preset_row openai[] = {
	KEY(HEADER, "X-Session-Id"),
	KEY(HEADER, "X-Conversation-Id"),
	JKEY("conversation.id"),
	JKEY("conversation"),
	JKEY("metadata.conversation_id"),
	JKEY("prompt_cache_key"),
	KEY(PATH_REGEX, "^/v1/threads/([^/]+)/"),
	JKEY("safety_identifier"),
	JKEY("user"),
};

static const struct preset_row generic[] = {
	KEY(HEADER, "X-Conversation-Id"),
	KEY(QUERY, "conversation_id"),
	KEY(COOKIE, "conv"),
	JKEY("conversation_id"),
	JKEY("session_id"),
};

#define PRESET(n, rows) {(n), (rows), sizeof(rows) / sizeof((rows)[0])}

static const struct preset presets[] = {
	PRESET("telegram", telegram),
	PRESET("slack", slack),
	PRESET("discord", discord),
	PRESET("botframework", botframework),
	PRESET("twilio", twilio),
	PRESET("whatsapp-cloud", whatsapp_cloud),
	PRESET("messenger", messenger),
	PRESET("line", line),
	PRESET("viber", viber),
	PRESET("sunshine", sunshine),
	PRESET("intercom", intercom),
	PRESET("rasa", rasa),
	PRESET("botpress", botpress),
	PRESET("openai", openai),
	PRESET("generic", generic),
};
/* clang-format on */

#define NPRESETS (sizeof(presets) / sizeof(presets[0]))

const struct preset *preset_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < NPRESETS; i++)
		if (strcmp(presets[i].name, name) == 0)
			return &presets[i];
	return NULL;
}

size_t preset_count(void)
{
	return NPRESETS;
}

const struct preset *preset_at(size_t i)
{
	return i < NPRESETS ? &presets[i] : NULL;
}

/* ---- body ---- */

static bool type_reads_body(enum rl_keysrc_type t)
{
	return t == RL_KEYSRC_JSON || t == RL_KEYSRC_FORM || t == RL_KEYSRC_FORMJSON;
}

bool preset_loc_reads_body(const char *loc)
{
	static const char *const prefixes[] = {"json:", "form:", "formjson:"};

	if (loc == NULL)
		return false;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(loc, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static bool row_reads_body(const struct preset_row *r)
{
	if (r->when != NULL || type_reads_body(r->type))
		return true;
	return r->type == RL_KEYSRC_SYM &&
	       (preset_loc_reads_body(r->arg) || preset_loc_reads_body(r->arg2));
}

bool preset_needs_body(const struct preset *p)
{
	for (size_t i = 0; p != NULL && i < p->nrows; i++)
		if (row_reads_body(&p->rows[i]))
			return true;
	return false;
}

/* ---- path regexes, compiled once ---- */

struct preset_re {
	const struct preset_row *row; /* the row whose arg this is */
	regex_t re;
	bool ok; /* regcomp succeeded */
};

static struct preset_re regexes[PRESET_REGEX_MAX];
static size_t nregexes;
static pthread_once_t regexes_once = PTHREAD_ONCE_INIT;

static void compile_regexes(void)
{
	for (size_t i = 0; i < NPRESETS; i++) {
		for (size_t j = 0; j < presets[i].nrows; j++) {
			const struct preset_row *r = &presets[i].rows[j];
			if (r->type != RL_KEYSRC_PATH_REGEX || nregexes == PRESET_REGEX_MAX)
				continue;
			regexes[nregexes].row = r;
			regexes[nregexes].ok =
			        regcomp(&regexes[nregexes].re, r->arg, REG_EXTENDED) == 0;
			nregexes++;
		}
	}
}

const regex_t *preset_regex(const struct preset_row *r)
{
	pthread_once(&regexes_once, compile_regexes);
	for (size_t i = 0; i < nregexes; i++)
		if (regexes[i].row == r)
			return regexes[i].ok ? &regexes[i].re : NULL;
	return NULL;
}

/* ---- names ---- */

int preset_row_format(const struct preset_row *r, char *buf, size_t len)
{
	static const char *const prefix[] = {
	        [RL_KEYSRC_HEADER] = "header",   [RL_KEYSRC_QUERY] = "query",
	        [RL_KEYSRC_COOKIE] = "cookie",   [RL_KEYSRC_PATH_SEG] = "path",
	        [RL_KEYSRC_PATH_REGEX] = "path", [RL_KEYSRC_JSON] = "json",
	        [RL_KEYSRC_FORM] = "form",       [RL_KEYSRC_FORMJSON] = "formjson",
	        [RL_KEYSRC_SYM] = "sym",
	};

	if (r->type == RL_KEYSRC_FORMJSON)
		return snprintf(buf, len, "formjson:%s:%s", r->arg, r->arg2);
	if (r->type == RL_KEYSRC_SYM)
		return snprintf(buf, len, "sym:%s|%s", r->arg, r->arg2);
	return snprintf(buf, len, "%s:%s", prefix[r->type], r->arg);
}

const char *preset_role_name(enum preset_role r)
{
	static const char *const names[] = {
	        [PRESET_NOKEY] = "nokey", [PRESET_SCOPE] = "scope", [PRESET_KEY] = "key"};
	size_t i = (size_t)r;

	return i < sizeof(names) / sizeof(names[0]) ? names[i] : "unknown";
}
