/* Model configuration: tiny defaults, the run YAML `model:` section (Hugging
 * Face key names) and Hugging Face config.json, plus one validation that
 * names the offending key. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "trainer/model.h"

void vt_model_config_default(vt_model_config *c) {
    memset(c, 0, sizeof *c);
    c->v_hidden = 32;
    c->v_inter = 64;
    c->v_layers = 2;
    c->v_heads = 2;
    c->image_size = 32;
    c->patch_size = 8;
    c->v_act = VT_ACT_QUICK_GELU;
    c->v_ln_eps = 1e-5f;
    c->vocab = 288;
    c->hidden = 64;
    c->inter = 128;
    c->layers = 2;
    c->heads = 4;
    c->kv_heads = 2;
    c->rms_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->max_pos = 512;
    c->tie_embeddings = false;
    c->image_token_index = 287;
    c->proj_act = VT_ACT_GELU;
    c->vision_feature_layer = -2;
    c->freeze_vision = true;
    c->freeze_projector = false;
    c->freeze_language = false;
    c->init_std = 0.02f;
}

int vt_model_image_tokens(const vt_model_config *c) {
    int g = c->patch_size > 0 ? c->image_size / c->patch_size : 0;
    return g * g;
}

vt_status vt_model_config_validate(const vt_model_config *c, vt_error *err) {
#define POS(v, key)                                                                                      \
    if ((v) <= 0) return vt_fail(err, VT_ERR_ARG, "model.%s: must be positive, got %d", key, (int)(v));
    POS(c->v_hidden, "vision_config.hidden_size");
    POS(c->v_inter, "vision_config.intermediate_size");
    POS(c->v_layers, "vision_config.num_hidden_layers");
    POS(c->v_heads, "vision_config.num_attention_heads");
    POS(c->image_size, "vision_config.image_size");
    POS(c->patch_size, "vision_config.patch_size");
    POS(c->vocab, "text_config.vocab_size");
    POS(c->hidden, "text_config.hidden_size");
    POS(c->inter, "text_config.intermediate_size");
    POS(c->layers, "text_config.num_hidden_layers");
    POS(c->heads, "text_config.num_attention_heads");
    POS(c->kv_heads, "text_config.num_key_value_heads");
    POS(c->max_pos, "text_config.max_position_embeddings");
#undef POS
    if (c->v_hidden % c->v_heads)
        return vt_fail(err, VT_ERR_ARG, "model.vision_config.num_attention_heads: %d does not divide hidden_size %d",
                       c->v_heads, c->v_hidden);
    if (c->image_size % c->patch_size)
        return vt_fail(err, VT_ERR_ARG, "model.vision_config.patch_size: %d does not divide image_size %d",
                       c->patch_size, c->image_size);
    if (c->hidden % c->heads)
        return vt_fail(err, VT_ERR_ARG, "model.text_config.num_attention_heads: %d does not divide hidden_size %d",
                       c->heads, c->hidden);
    if (c->heads % c->kv_heads)
        return vt_fail(err, VT_ERR_ARG,
                       "model.text_config.num_key_value_heads: %d does not divide num_attention_heads %d",
                       c->kv_heads, c->heads);
    if ((c->hidden / c->heads) % 2)
        return vt_fail(err, VT_ERR_ARG, "model.text_config: head dim %d must be even for RoPE", c->hidden / c->heads);
    if (!(c->v_ln_eps > 0) || !(c->rms_eps > 0))
        return vt_fail(err, VT_ERR_ARG, "model: layer_norm_eps / rms_norm_eps must be > 0");
    if (!(c->rope_theta > 0)) return vt_fail(err, VT_ERR_ARG, "model.text_config.rope_theta: must be > 0");
    if (!(c->init_std >= 0)) return vt_fail(err, VT_ERR_ARG, "model.initializer_range: must be >= 0");
    if (c->image_token_index < 0)
        return vt_fail(err, VT_ERR_ARG, "model.image_token_index: must be >= 0, got %d", c->image_token_index);
    int fl = c->vision_feature_layer;
    if (fl < -(c->v_layers + 1) || fl > c->v_layers)
        return vt_fail(err, VT_ERR_ARG,
                       "model.vision_feature_layer: %d out of range for %d vision layers ([-%d, %d])", fl,
                       c->v_layers, c->v_layers + 1, c->v_layers);
    if ((long)vt_model_image_tokens(c) > (long)c->max_pos)
        return vt_fail(err, VT_ERR_ARG, "model: %d image tokens exceed max_position_embeddings %d",
                       vt_model_image_tokens(c), c->max_pos);
    return VT_OK;
}

static vt_status get_int(const vt_config *cfg, const char *prefix, const char *key, int *v, vt_error *err) {
    char path[256];
    snprintf(path, sizeof path, "%s.%s", prefix, key);
    int64_t x = *v;
    vt_status st = vt_config_int_range(cfg, path, INT32_MIN, INT32_MAX, &x, err);
    if (!st) *v = (int)x;
    return st;
}

static vt_status get_float(const vt_config *cfg, const char *prefix, const char *key, float *v, vt_error *err) {
    char path[256];
    snprintf(path, sizeof path, "%s.%s", prefix, key);
    double x = *v;
    vt_status st = vt_config_double(cfg, path, &x, err);
    if (!st) *v = (float)x;
    return st;
}

static vt_status get_bool(const vt_config *cfg, const char *prefix, const char *key, bool *v, vt_error *err) {
    char path[256];
    snprintf(path, sizeof path, "%s.%s", prefix, key);
    return vt_config_bool(cfg, path, v, err);
}

static vt_status get_act(const vt_config *cfg, const char *prefix, const char *key, vt_activation *v,
                         vt_error *err) {
    char path[256];
    snprintf(path, sizeof path, "%s.%s", prefix, key);
    const char *s = NULL;
    vt_status st = vt_config_string(cfg, path, &s, err);
    if (st || !s) return st;
    st = vt_activation_from_name(s, v, err);
    if (st) vt_error_prefix(err, "%s: %s: ", vt_config_name(cfg), path);
    return st;
}

vt_status vt_model_config_read(const vt_config *cfg, const char *prefix, vt_model_config *c, vt_error *err) {
    char vp[128], tp[128], fp[128];
    snprintf(vp, sizeof vp, "%s.vision_config", prefix);
    snprintf(tp, sizeof tp, "%s.text_config", prefix);
    snprintf(fp, sizeof fp, "%s.freeze", prefix);
    vt_status st;
#define T(x)                                                                                             \
    if ((st = (x))) return st;
    T(get_int(cfg, vp, "hidden_size", &c->v_hidden, err));
    T(get_int(cfg, vp, "intermediate_size", &c->v_inter, err));
    T(get_int(cfg, vp, "num_hidden_layers", &c->v_layers, err));
    T(get_int(cfg, vp, "num_attention_heads", &c->v_heads, err));
    T(get_int(cfg, vp, "image_size", &c->image_size, err));
    T(get_int(cfg, vp, "patch_size", &c->patch_size, err));
    T(get_act(cfg, vp, "hidden_act", &c->v_act, err));
    T(get_float(cfg, vp, "layer_norm_eps", &c->v_ln_eps, err));
    T(get_int(cfg, tp, "vocab_size", &c->vocab, err));
    T(get_int(cfg, tp, "hidden_size", &c->hidden, err));
    T(get_int(cfg, tp, "intermediate_size", &c->inter, err));
    T(get_int(cfg, tp, "num_hidden_layers", &c->layers, err));
    T(get_int(cfg, tp, "num_attention_heads", &c->heads, err));
    /* LLaMA: absent num_key_value_heads means plain multi-head attention. */
    char kvp[160];
    snprintf(kvp, sizeof kvp, "%s.num_key_value_heads", tp);
    if (!vt_config_has(cfg, kvp)) c->kv_heads = c->heads;
    T(get_int(cfg, tp, "num_key_value_heads", &c->kv_heads, err));
    T(get_float(cfg, tp, "rms_norm_eps", &c->rms_eps, err));
    T(get_float(cfg, tp, "rope_theta", &c->rope_theta, err));
    T(get_int(cfg, tp, "max_position_embeddings", &c->max_pos, err));
    T(get_bool(cfg, tp, "tie_word_embeddings", &c->tie_embeddings, err));
    T(get_int(cfg, prefix, "image_token_index", &c->image_token_index, err));
    T(get_act(cfg, prefix, "projector_hidden_act", &c->proj_act, err));
    T(get_int(cfg, prefix, "vision_feature_layer", &c->vision_feature_layer, err));
    T(get_float(cfg, prefix, "initializer_range", &c->init_std, err));
    T(get_bool(cfg, fp, "vision_tower", &c->freeze_vision, err));
    T(get_bool(cfg, fp, "multi_modal_projector", &c->freeze_projector, err));
    T(get_bool(cfg, fp, "language_model", &c->freeze_language, err));
#undef T
    st = vt_model_config_validate(c, err);
    if (st) vt_error_prefix(err, "%s: ", vt_config_name(cfg));
    return st;
}

/* ---- Hugging Face config.json ---- */

static vt_status json_int(const cJSON *o, const char *key, int *v, const char *path, const char *sect, vt_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) return VT_OK;
    if (!cJSON_IsNumber(j) || floor(j->valuedouble) != j->valuedouble || fabs(j->valuedouble) > 2147483647.0)
        return vt_fail(err, VT_ERR_FORMAT, "%s: %s%s: expected an integer", path, sect, key);
    *v = (int)j->valuedouble;
    return VT_OK;
}

static vt_status json_float(const cJSON *o, const char *key, float *v, const char *path, const char *sect,
                            vt_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) return VT_OK;
    if (!cJSON_IsNumber(j)) return vt_fail(err, VT_ERR_FORMAT, "%s: %s%s: expected a number", path, sect, key);
    *v = (float)j->valuedouble;
    return VT_OK;
}

static vt_status json_act(const cJSON *o, const char *key, vt_activation *v, const char *path, const char *sect,
                          vt_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) return VT_OK;
    if (!cJSON_IsString(j)) return vt_fail(err, VT_ERR_FORMAT, "%s: %s%s: expected a string", path, sect, key);
    vt_status st = vt_activation_from_name(j->valuestring, v, err);
    if (st) vt_error_prefix(err, "%s: %s%s: ", path, sect, key);
    return st;
}

vt_status vt_model_config_from_hf_json(const char *path, vt_model_config *c, vt_error *err) {
    char *text = NULL;
    size_t len = 0;
    vt_status st = vt_read_file(path, 16u << 20, &text, &len, err);
    if (st) return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return vt_fail(err, VT_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (!cJSON_IsString(mt) || strcmp(mt->valuestring, "llava")) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: model_type must be \"llava\"", path);
        goto out;
    }
    if (!cJSON_IsObject(vc) || !cJSON_IsObject(tc)) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: vision_config and text_config must be objects", path);
        goto out;
    }
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(root, "vision_feature_select_strategy");
    if (fs && (!cJSON_IsString(fs) || strcmp(fs->valuestring, "default"))) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: vision_feature_select_strategy must be \"default\" (CLS dropped)", path);
        goto out;
    }
    const cJSON *pb = cJSON_GetObjectItemCaseSensitive(root, "multimodal_projector_bias");
    if (pb && cJSON_IsFalse(pb)) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: multimodal_projector_bias false is not supported", path);
        goto out;
    }
    /* Older exports spell the image token "image_token_index", newer ones "image_token_id". */
    if (!(st = json_int(root, "image_token_index", &c->image_token_index, path, "", err)) &&
        !(st = json_int(root, "image_token_id", &c->image_token_index, path, "", err)) &&
        !(st = json_act(root, "projector_hidden_act", &c->proj_act, path, "", err)) &&
        !(st = json_int(root, "vision_feature_layer", &c->vision_feature_layer, path, "", err)) &&
        !(st = json_float(root, "initializer_range", &c->init_std, path, "", err)) &&
        !(st = json_int(vc, "hidden_size", &c->v_hidden, path, "vision_config.", err)) &&
        !(st = json_int(vc, "intermediate_size", &c->v_inter, path, "vision_config.", err)) &&
        !(st = json_int(vc, "num_hidden_layers", &c->v_layers, path, "vision_config.", err)) &&
        !(st = json_int(vc, "num_attention_heads", &c->v_heads, path, "vision_config.", err)) &&
        !(st = json_int(vc, "image_size", &c->image_size, path, "vision_config.", err)) &&
        !(st = json_int(vc, "patch_size", &c->patch_size, path, "vision_config.", err)) &&
        !(st = json_act(vc, "hidden_act", &c->v_act, path, "vision_config.", err)) &&
        !(st = json_float(vc, "layer_norm_eps", &c->v_ln_eps, path, "vision_config.", err)) &&
        !(st = json_int(tc, "vocab_size", &c->vocab, path, "text_config.", err)) &&
        !(st = json_int(tc, "hidden_size", &c->hidden, path, "text_config.", err)) &&
        !(st = json_int(tc, "intermediate_size", &c->inter, path, "text_config.", err)) &&
        !(st = json_int(tc, "num_hidden_layers", &c->layers, path, "text_config.", err)) &&
        !(st = json_int(tc, "num_attention_heads", &c->heads, path, "text_config.", err))) {
        c->kv_heads = c->heads;
        if (!(st = json_int(tc, "num_key_value_heads", &c->kv_heads, path, "text_config.", err)) &&
            !(st = json_float(tc, "rms_norm_eps", &c->rms_eps, path, "text_config.", err)) &&
            !(st = json_float(tc, "rope_theta", &c->rope_theta, path, "text_config.", err)) &&
            !(st = json_int(tc, "max_position_embeddings", &c->max_pos, path, "text_config.", err))) {
            const cJSON *tie = cJSON_GetObjectItemCaseSensitive(tc, "tie_word_embeddings");
            if (!tie) tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
            if (tie) c->tie_embeddings = cJSON_IsTrue(tie);
            const cJSON *hd = cJSON_GetObjectItemCaseSensitive(tc, "head_dim");
            if (cJSON_IsNumber(hd) && c->heads > 0 && (int)hd->valuedouble * c->heads != c->hidden)
                st = vt_fail(err, VT_ERR_FORMAT, "%s: text_config.head_dim %d != hidden_size / num_attention_heads",
                             path, (int)hd->valuedouble);
            const cJSON *rs = cJSON_GetObjectItemCaseSensitive(tc, "rope_scaling");
            if (!st && rs && !cJSON_IsNull(rs))
                st = vt_fail(err, VT_ERR_FORMAT, "%s: text_config.rope_scaling is not supported", path);
        }
    }
    if (!st) {
        st = vt_model_config_validate(c, err);
        if (st) vt_error_prefix(err, "%s: ", path);
    }
out:
    cJSON_Delete(root);
    return st;
}
