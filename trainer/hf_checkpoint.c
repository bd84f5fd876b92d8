/* Hugging Face interop: export the model as model.safetensors + config.json
 * in the LlavaForConditionalGeneration layout (CLIPVisionModel + projector +
 * LlamaForCausalLM), and import such a checkpoint by tensor name with strict
 * name/shape checks. Names are those of transformers 4.36-4.51, which 4.52+
 * still reads and writes through its checkpoint conversion mapping. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "trainer/model_internal.h"
#include "trainer/safetensors.h"

/* Copies all parameters to a host buffer. */
static vt_status params_to_host(const vt_model *m, float **out, vt_error *err) {
    float *h = malloc(sizeof(float) * (m->num_params ? m->num_params : 1));
    if (!h) return vt_fail(err, VT_ERR_NOMEM, "model: cannot allocate %zu floats on the host", m->num_params);
    vt_status st = vt_ctx_memcpy_d2h(m->ctx, h, m->params, sizeof(float) * m->num_params);
    if (st) {
        free(h);
        return vt_model_op_fail((vt_model *)m, st, "copying parameters to the host", err);
    }
    *out = h;
    return VT_OK;
}

/* A float as the shortest decimal that reads back to the same float, so
 * config.json says 1e-05, not 9.99999974737875e-06. */
static double clean(float f) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static char *config_json(const vt_model_config *c) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(r, "architectures", cJSON_CreateStringArray((const char *[]){"LlavaForConditionalGeneration"}, 1));
    cJSON_AddStringToObject(r, "model_type", "llava");
    cJSON_AddNumberToObject(r, "image_token_index", c->image_token_index);
    cJSON_AddNumberToObject(r, "image_seq_length", vt_model_image_tokens(c));
    cJSON_AddStringToObject(r, "projector_hidden_act", vt_activation_name(c->proj_act));
    cJSON_AddBoolToObject(r, "multimodal_projector_bias", 1);
    cJSON_AddNumberToObject(r, "vision_feature_layer", c->vision_feature_layer);
    cJSON_AddStringToObject(r, "vision_feature_select_strategy", "default");
    cJSON_AddNumberToObject(r, "ignore_index", -100);
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddStringToObject(r, "torch_dtype", "float32");
    cJSON *v = cJSON_AddObjectToObject(r, "vision_config");
    cJSON_AddStringToObject(v, "model_type", "clip_vision_model");
    cJSON_AddNumberToObject(v, "hidden_size", c->v_hidden);
    cJSON_AddNumberToObject(v, "intermediate_size", c->v_inter);
    cJSON_AddNumberToObject(v, "num_hidden_layers", c->v_layers);
    cJSON_AddNumberToObject(v, "num_attention_heads", c->v_heads);
    cJSON_AddNumberToObject(v, "num_channels", 3);
    cJSON_AddNumberToObject(v, "image_size", c->image_size);
    cJSON_AddNumberToObject(v, "patch_size", c->patch_size);
    cJSON_AddStringToObject(v, "hidden_act", vt_activation_name(c->v_act));
    cJSON_AddNumberToObject(v, "layer_norm_eps", clean(c->v_ln_eps));
    cJSON_AddNumberToObject(v, "attention_dropout", 0.0);
    cJSON_AddNumberToObject(v, "initializer_range", clean(c->init_std));
    cJSON *t = cJSON_AddObjectToObject(r, "text_config");
    cJSON_AddStringToObject(t, "model_type", "llama");
    cJSON_AddItemToObject(t, "architectures", cJSON_CreateStringArray((const char *[]){"LlamaForCausalLM"}, 1));
    cJSON_AddNumberToObject(t, "vocab_size", c->vocab);
    cJSON_AddNumberToObject(t, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(t, "intermediate_size", c->inter);
    cJSON_AddNumberToObject(t, "num_hidden_layers", c->layers);
    cJSON_AddNumberToObject(t, "num_attention_heads", c->heads);
    cJSON_AddNumberToObject(t, "num_key_value_heads", c->kv_heads);
    cJSON_AddNumberToObject(t, "head_dim", c->hidden / c->heads);
    cJSON_AddStringToObject(t, "hidden_act", "silu");
    cJSON_AddNumberToObject(t, "rms_norm_eps", clean(c->rms_eps));
    cJSON_AddNumberToObject(t, "rope_theta", clean(c->rope_theta));
    cJSON_AddNullToObject(t, "rope_scaling");
    cJSON_AddNumberToObject(t, "max_position_embeddings", c->max_pos);
    cJSON_AddBoolToObject(t, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddBoolToObject(t, "attention_bias", 0);
    cJSON_AddBoolToObject(t, "mlp_bias", 0);
    cJSON_AddNumberToObject(t, "initializer_range", clean(c->init_std));
    cJSON_AddStringToObject(t, "torch_dtype", "float32");
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    return s;
}

vt_status vt_model_export_hf(const vt_model *m, const char *dir, const char *const *meta_kv, vt_error *err) {
    vt_status st = vt_mkdir_p(dir, err);
    if (st) return st;
    float *h = NULL;
    if ((st = params_to_host(m, &h, err))) return st;
    vt_st_writer *w = vt_st_writer_new();
    if (!w) {
        free(h);
        return vt_fail(err, VT_ERR_NOMEM, "model: out of memory");
    }
    st = vt_st_writer_meta(w, "format", "pt", err);
    for (const char *const *kv = meta_kv; !st && kv && kv[0] && kv[1]; kv += 2) st = vt_st_writer_meta(w, kv[0], kv[1], err);
    for (int i = 0; !st && i < m->ntensors; i++) {
        const vt_param_info *p = &m->tensors[i];
        st = vt_st_writer_add(w, p->name, VT_ST_F32, p->ndim, p->shape, h + p->offset, err);
    }
    char path[4096];
    if (!st) st = vt_path_join(path, sizeof path, dir, "model.safetensors", err);
    if (!st) st = vt_st_writer_write(w, path, err);
    vt_st_writer_free(w);
    free(h);
    if (st) return st;
    char *json = config_json(&m->cfg);
    if (!json) return vt_fail(err, VT_ERR_NOMEM, "model: out of memory writing config.json");
    st = vt_path_join(path, sizeof path, dir, "config.json", err);
    if (!st) st = vt_write_file_atomic(path, json, strlen(json), err);
    free(json);
    return st;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Names a LLaVA checkpoint may carry that this model deliberately ignores. */
static bool ignorable(const vt_model *m, const char *name) {
    if (!strcmp(name, "vision_tower.vision_model.embeddings.position_ids")) return true; /* old persistent buffer */
    if (m->cfg.tie_embeddings && !strcmp(name, "language_model.lm_head.weight")) return true;
    return false;
}

vt_status vt_model_import_hf(vt_model *m, const char *path, vt_error *err) {
    char file[4096];
    if (vt_is_dir(path)) {
        vt_status st = vt_path_join(file, sizeof file, path, "model.safetensors", err);
        if (st) return st;
    } else {
        snprintf(file, sizeof file, "%s", path);
    }
    vt_st_file *f = NULL;
    vt_status st = vt_st_open(file, &f, err);
    if (st) return st;
    for (int i = 0; i < vt_st_count(f); i++) {
        const vt_st_tensor *t = vt_st_at(f, i);
        if (!vt_model_find(m, t->name) && !ignorable(m, t->name)) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s' is not part of this model (check the model config)",
                         file, t->name);
            vt_st_close(f);
            return st;
        }
    }
    float *h = NULL;
    if ((st = params_to_host(m, &h, err))) {
        vt_st_close(f);
        return st;
    }
    for (int i = 0; !st && i < m->ntensors; i++) {
        const vt_param_info *p = &m->tensors[i];
        const vt_st_tensor *t = vt_st_find(f, p->name);
        if (!t) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s' is missing", file, p->name);
            break;
        }
        bool same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char a[96], b[96];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, p->ndim, p->shape);
            st = vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s' has shape %s, the model config needs %s", file, p->name,
                         a, b);
            break;
        }
        st = vt_st_read_f32(f, t, h + p->offset, (int64_t)p->numel, err);
    }
    if (!st) {
        vt_status s2 = vt_ctx_memcpy_h2d(m->ctx, m->params, h, sizeof(float) * m->num_params);
        if (s2) st = vt_model_op_fail(m, s2, "copying parameters to the device", err);
    }
    free(h);
    vt_st_close(f);
    return st;
}
