/* Chat templates (plain, vicuna_v1, chatml): turns -> ids + answer-only loss
 * mask, image placeholder expansion, truncation and padding. Text pieces are
 * tokenised one after another with VT_TOK_CONTINUATION, cut where the
 * tokenizers' own pre-tokenisation cuts (before " answer", after a role
 * line), so the ids equal those of the whole rendered text. */
#include "pipeline/chat_template.h"

#include <stdlib.h>
#include <string.h>

#include "pipeline/unicode.h"

const char vt_chat_vicuna_system[] =
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions.";
const char vt_chat_chatml_system[] = "You are a helpful assistant.";

static const char PLACEHOLDER[] = "<image>";

static int32_t find_or_add(vt_tokenizer *tok, const char *const *names, bool add_first, vt_error *err,
                           vt_status *st) {
    for (const char *const *n = names; *n; n++) {
        int32_t id = vt_tokenizer_token_id(tok, *n);
        if (id >= 0) return id;
    }
    if (!add_first) return -1;
    int32_t id = -1;
    *st = vt_tokenizer_add_special(tok, names[0], &id, err);
    return id;
}

vt_status vt_chat_template_init(vt_chat_template *tpl, const char *name, const char *system, vt_tokenizer *tok,
                                vt_error *err) {
    memset(tpl, 0, sizeof *tpl);
    tpl->bos = tpl->end_of_turn = tpl->im_start = tpl->image_token = tpl->pad = -1;
    vt_status st = VT_OK;
    const char *dflt;
    if (strcmp(name, "plain") == 0) {
        tpl->format = VT_CHAT_PLAIN;
        dflt = "";
    } else if (strcmp(name, "vicuna_v1") == 0) {
        tpl->format = VT_CHAT_VICUNA_V1;
        dflt = vt_chat_vicuna_system;
    } else if (strcmp(name, "chatml") == 0) {
        tpl->format = VT_CHAT_CHATML;
        dflt = vt_chat_chatml_system;
    } else {
        return vt_fail(err, VT_ERR_ARG, "unknown chat template '%s' (plain, vicuna_v1, chatml)", name);
    }
    tpl->owned_system = strdup(system ? system : dflt);
    if (!tpl->owned_system) return vt_fail(err, VT_ERR_NOMEM, "out of memory");
    tpl->system = tpl->owned_system;
    static const char *const image[] = {"<image>", "<|image_pad|>", "<|image|>", NULL};
    tpl->image_token = find_or_add(tok, image, true, err, &st);
    if (st) goto fail;
    if (tpl->format == VT_CHAT_CHATML) {
        static const char *const start[] = {"<|im_start|>", NULL}, *const end[] = {"<|im_end|>", NULL};
        tpl->im_start = find_or_add(tok, start, true, err, &st);
        if (!st) tpl->end_of_turn = find_or_add(tok, end, true, err, &st);
        if (st) goto fail;
    } else {
        static const char *const eos[] = {"</s>", NULL};
        tpl->end_of_turn = find_or_add(tok, eos, false, err, &st);
        if (tpl->end_of_turn < 0) tpl->end_of_turn = vt_tokenizer_eos_id(tok);
        if (tpl->end_of_turn < 0) {
            st = vt_fail(err, VT_ERR_ARG, "chat template '%s': the tokenizer has no end-of-sequence token", name);
            goto fail;
        }
        tpl->bos = vt_tokenizer_bos_id(tok);
    }
    tpl->pad = vt_tokenizer_pad_id(tok);
    if (tpl->pad < 0) tpl->pad = tpl->end_of_turn;
    return VT_OK;
fail:
    vt_chat_template_free(tpl);
    return st;
}

void vt_chat_template_free(vt_chat_template *tpl) {
    free(tpl->owned_system);
    tpl->owned_system = NULL;
    tpl->system = NULL;
}

/* ---- sequence builder ---------------------------------------------- */

typedef struct seq {
    vt_tokens ids;
    uint8_t *mask;
    size_t mask_cap;
    size_t ans_start[256], ans_end[256]; /* answer spans */
    int n_ans;
    int32_t image_start, image_len;
} seq;

static vt_status sync_mask(seq *s, uint8_t value, size_t from, vt_error *err) {
    if (s->ids.n > s->mask_cap) {
        size_t cap = s->ids.cap;
        uint8_t *m = realloc(s->mask, cap);
        if (!m) return vt_fail(err, VT_ERR_NOMEM, "out of memory");
        s->mask = m;
        s->mask_cap = cap;
    }
    memset(s->mask + from, value, s->ids.n - from);
    return VT_OK;
}

static vt_status add_id(seq *s, int32_t id, uint8_t m, vt_error *err) {
    size_t from = s->ids.n;
    vt_status st = vt_tokens_push(&s->ids, id, err);
    return st ? st : sync_mask(s, m, from, err);
}

static vt_status add_text(seq *s, vt_tokenizer *tok, const char *text, size_t len, uint8_t m, vt_error *err) {
    size_t from = s->ids.n;
    unsigned flags = from ? VT_TOK_CONTINUATION : 0;
    vt_status st = vt_tokenizer_encode(tok, text, len, flags, &s->ids, err);
    return st ? st : sync_mask(s, m, from, err);
}

static vt_status add_str(seq *s, vt_tokenizer *tok, const char *text, uint8_t m, vt_error *err) {
    return add_text(s, tok, text, strlen(text), m, err);
}

static const char *find_placeholder(const char *t, size_t len) {
    for (size_t i = 0; i + sizeof PLACEHOLDER - 1 <= len; i++)
        if (memcmp(t + i, PLACEHOLDER, sizeof PLACEHOLDER - 1) == 0) return t + i;
    return NULL;
}

/* The user text with the image span where its placeholder was (first user
 * turn only; a missing placeholder goes in front, followed by "\n", as
 * LLaVA's data puts it). */
/* prefix + text[0..len) as one piece (a separator glued to the text it
 * precedes, as the tokenizers' pre-tokenisation does). */
static vt_status add_prefixed(seq *s, vt_tokenizer *tok, const char *prefix, const char *text, size_t len,
                              uint8_t m, vt_error *err) {
    size_t plen = prefix ? strlen(prefix) : 0;
    if (plen == 0) return add_text(s, tok, text, len, m, err);
    char *buf = malloc(plen + len + 1);
    if (!buf) return vt_fail(err, VT_ERR_NOMEM, "out of memory");
    memcpy(buf, prefix, plen);
    memcpy(buf + plen, text, len);
    vt_status st = add_text(s, tok, buf, plen + len, m, err);
    free(buf);
    return st;
}

static vt_status add_user_text(seq *s, const vt_chat_template *tpl, vt_tokenizer *tok, const char *prefix,
                               const vt_chat_turn *t, bool first_user, int32_t n_image, size_t turn_no,
                               vt_error *err) {
    const char *ph = find_placeholder(t->text, t->len);
    if (!first_user || n_image == 0) {
        if (ph)
            return vt_fail(err, VT_ERR_FORMAT, "turn %zu: '<image>' placeholder %s", turn_no,
                           first_user ? "in a sample without an image" : "outside the first user turn");
        return add_prefixed(s, tok, prefix, t->text, t->len, 0, err);
    }
    size_t before = ph ? (size_t)(ph - t->text) : 0;
    const char *after = ph ? ph + sizeof PLACEHOLDER - 1 : t->text;
    size_t after_len = t->len - (size_t)(after - t->text);
    if (ph && find_placeholder(after, after_len))
        return vt_fail(err, VT_ERR_FORMAT, "turn %zu: more than one '<image>' placeholder", turn_no);
    vt_status st = add_prefixed(s, tok, prefix, t->text, before, 0, err);
    if (st) return st;
    s->image_start = (int32_t)s->ids.n;
    s->image_len = n_image;
    for (int32_t k = 0; k < n_image && !st; k++) st = add_id(s, tpl->image_token, 0, err);
    if (!st && !ph) st = add_str(s, tok, "\n", 0, err);
    if (!st) st = add_text(s, tok, after, after_len, 0, err);
    return st;
}

static vt_status add_answer(seq *s, vt_tokenizer *tok, const char *prefix, const vt_chat_turn *t, int32_t eot,
                            vt_error *err) {
    if (s->n_ans == (int)(sizeof s->ans_start / sizeof s->ans_start[0]))
        return vt_fail(err, VT_ERR_RANGE, "more than %d answers in one sample", s->n_ans);
    size_t start = s->ids.n;
    /* vicuna_v1: the separator space belongs to the answer's first token. */
    vt_status st = add_prefixed(s, tok, t->len ? prefix : NULL, t->text, t->len, 1, err);
    if (!st) st = add_id(s, eot, 1, err);
    if (!st) {
        s->ans_start[s->n_ans] = start;
        s->ans_end[s->n_ans++] = s->ids.n;
    }
    return st;
}

static vt_status check_roles(const vt_chat_turn *turns, size_t n, size_t *first_dialog, vt_error *err) {
    if (n == 0) return vt_fail(err, VT_ERR_FORMAT, "sample has no turns");
    size_t i = 0;
    if (turns[0].role == VT_CHAT_SYSTEM) i = 1;
    *first_dialog = i;
    for (size_t k = i; k < n; k++) {
        size_t bad;
        if (!vt_utf8_valid(turns[k].text, turns[k].len, &bad))
            return vt_fail(err, VT_ERR_FORMAT, "turn %zu: text is not valid UTF-8 at byte offset %zu", k, bad);
        int want = ((k - i) % 2 == 0) ? VT_CHAT_USER : VT_CHAT_ASSISTANT;
        if (turns[k].role != want)
            return vt_fail(err, VT_ERR_FORMAT, "turn %zu: expected a %s turn (user and assistant alternate, "
                           "system only first)", k, want == VT_CHAT_USER ? "user" : "assistant");
    }
    if (i == 1 && !vt_utf8_valid(turns[0].text, turns[0].len, NULL))
        return vt_fail(err, VT_ERR_FORMAT, "turn 0: system text is not valid UTF-8");
    return VT_OK;
}

static vt_status build(seq *s, const vt_chat_template *tpl, vt_tokenizer *tok, const vt_chat_turn *turns,
                       size_t n, int32_t n_image, vt_error *err) {
    size_t first = 0;
    vt_status st = check_roles(turns, n, &first, err);
    if (st) return st;
    const char *system = tpl->system;
    size_t system_len = strlen(system);
    if (first == 1) {
        system = turns[0].text;
        system_len = turns[0].len;
    }
    if (tpl->bos >= 0 && (st = add_id(s, tpl->bos, 0, err))) return st;
    if (tpl->format == VT_CHAT_PLAIN) {
        if (n < first + 2)
            return vt_fail(err, VT_ERR_FORMAT, "template 'plain' needs a user turn and an assistant turn (caption)");
        /* LLaVA stage 1 drops the instruction: image, then the caption. */
        if (find_placeholder(turns[first].text, turns[first].len) && n_image == 0)
            return vt_fail(err, VT_ERR_FORMAT, "turn %zu: '<image>' placeholder in a sample without an image", first);
        s->image_start = n_image ? (int32_t)s->ids.n : -1;
        s->image_len = n_image;
        for (int32_t k = 0; k < n_image && !st; k++) st = add_id(s, tpl->image_token, 0, err);
        return st ? st : add_answer(s, tok, NULL, &turns[first + 1], tpl->end_of_turn, err);
    }
    if (tpl->format == VT_CHAT_VICUNA_V1) {
        /* "{system} USER: {q} ASSISTANT: {a}</s>USER: ...", cut into pieces
         * "{system} USER:", " {q}", " ASSISTANT:", " {a}", </s>, "USER:", ... */
        for (size_t k = first; k < n && !st; k += 2) {
            if (k == first && system_len) {
                if ((st = add_prefixed(s, tok, NULL, system, system_len, 0, err))) break;
                if ((st = add_str(s, tok, " USER:", 0, err))) break;
            } else if ((st = add_str(s, tok, "USER:", 0, err))) {
                break;
            }
            if ((st = add_user_text(s, tpl, tok, " ", &turns[k], k == first, n_image, k, err))) break;
            if ((st = add_str(s, tok, " ASSISTANT:", 0, err))) break;
            if (k + 1 < n) st = add_answer(s, tok, " ", &turns[k + 1], tpl->end_of_turn, err);
        }
        return st;
    }
    /* chatml */
    if (system_len) {
        if ((st = add_id(s, tpl->im_start, 0, err)) || (st = add_str(s, tok, "system\n", 0, err)) ||
            (st = add_text(s, tok, system, system_len, 0, err)) || (st = add_id(s, tpl->end_of_turn, 0, err)) ||
            (st = add_str(s, tok, "\n", 0, err)))
            return st;
    }
    for (size_t k = first; k < n && !st; k += 2) {
        if ((st = add_id(s, tpl->im_start, 0, err)) || (st = add_str(s, tok, "user\n", 0, err))) break;
        if ((st = add_user_text(s, tpl, tok, NULL, &turns[k], k == first, n_image, k, err))) break;
        if ((st = add_id(s, tpl->end_of_turn, 0, err)) || (st = add_str(s, tok, "\n", 0, err))) break;
        if ((st = add_id(s, tpl->im_start, 0, err)) || (st = add_str(s, tok, "assistant\n", 0, err))) break;
        if (k + 1 < n) {
            if ((st = add_answer(s, tok, NULL, &turns[k + 1], tpl->end_of_turn, err))) break;
            st = add_str(s, tok, "\n", 0, err);
        }
    }
    return st;
}

vt_status vt_chat_encode(const vt_chat_template *tpl, vt_tokenizer *tok, const vt_chat_turn *turns, size_t n_turns,
                         int32_t n_image_tokens, size_t max_len, bool pad, int32_t *ids, uint8_t *mask,
                         vt_chat_result *res, vt_error *err) {
    memset(res, 0, sizeof *res);
    res->image_start = -1;
    if (max_len == 0) return vt_fail(err, VT_ERR_ARG, "max_len must be positive");
    if (n_image_tokens < 0) return vt_fail(err, VT_ERR_ARG, "negative image token count %d", n_image_tokens);
    seq s = {0};
    s.image_start = -1;
    vt_status st = build(&s, tpl, tok, turns, n_turns, n_image_tokens, err);
    if (st) goto done;
    if (s.image_start >= 0 && (size_t)s.image_start + (size_t)s.image_len > max_len) {
        st = vt_fail(err, VT_ERR_RANGE, "image span (%d tokens at position %d) does not fit max_len %zu",
                     s.image_len, s.image_start, max_len);
        goto done;
    }
    size_t len = s.ids.n < max_len ? s.ids.n : max_len;
    res->truncated = s.ids.n > max_len;
    res->answers = s.n_ans;
    for (int a = 0; a < s.n_ans; a++) {
        if (s.ans_start[a] >= len) res->answers_dropped++;
        else if (s.ans_end[a] > len) res->answers_cut++;
    }
    memcpy(ids, s.ids.ids, len * sizeof *ids);
    memcpy(mask, s.mask, len);
    for (size_t i = 0; i < len; i++) res->loss_tokens += mask[i];
    if (pad) {
        for (size_t i = len; i < max_len; i++) {
            ids[i] = tpl->pad;
            mask[i] = 0;
        }
    }
    res->length = len;
    res->image_start = s.image_start;
    res->image_len = s.image_start >= 0 ? s.image_len : 0;
done:
    vt_tokens_free(&s.ids);
    free(s.mask);
    return st;
}

vt_status vt_chat_encode_sample(const vt_chat_template *tpl, vt_tokenizer *tok, const Vt__Sample *sample,
                                int32_t n_image_tokens, size_t max_len, bool pad, int32_t *ids, uint8_t *mask,
                                vt_chat_result *res, vt_error *err) {
    _Static_assert((int)VT__ROLE__ROLE_SYSTEM == (int)VT_CHAT_SYSTEM && (int)VT__ROLE__ROLE_USER == (int)VT_CHAT_USER &&
                       (int)VT__ROLE__ROLE_ASSISTANT == (int)VT_CHAT_ASSISTANT,
                   "vt_chat roles mirror vt.Role");
    vt_chat_turn small[16] = {{0, NULL, 0}}, *turns = small;
    if (sample->n_turns > sizeof small / sizeof small[0]) {
        turns = malloc(sample->n_turns * sizeof *turns);
        if (!turns) return vt_fail(err, VT_ERR_NOMEM, "out of memory");
    }
    vt_status st = VT_OK;
    for (size_t k = 0; k < sample->n_turns && !st; k++) {
        const Vt__Turn *t = sample->turns[k];
        if (t->role != VT__ROLE__ROLE_SYSTEM && t->role != VT__ROLE__ROLE_USER && t->role != VT__ROLE__ROLE_ASSISTANT)
            st = vt_fail(err, VT_ERR_FORMAT, "turn %zu: role %d is not system, user or assistant", k, (int)t->role);
        turns[k] = (vt_chat_turn){(int)t->role, t->text ? t->text : "", t->text ? strlen(t->text) : 0};
    }
    if (!st)
        st = vt_chat_encode(tpl, tok, turns, sample->n_turns, n_image_tokens, max_len, pad, ids, mask, res, err);
    if (st) vt_error_prefix(err, "sample %llu: ", (unsigned long long)sample->index);
    if (turns != small) free(turns);
    return st;
}
