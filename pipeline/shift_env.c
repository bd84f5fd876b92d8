/* Resources of the text shifts, shared by all threads of an evaluator:
 * WordNet is loaded on first use under a mutex (most runs never need it),
 * and a failed load is remembered so every caller gets the same error. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/shift_internal.h"

struct vt_shift_env {
    char wordnet_dir[4096];
    pthread_mutex_t lock;
    int tried;
    vt_wordnet *wn;
    vt_error load_err;
};

vt_status vt_shift_env_open(vt_shift_env **env, const char *wordnet_dir, vt_error *err) {
    *env = calloc(1, sizeof **env);
    if (!*env) return vt_fail(err, VT_ERR_NOMEM, "shift env: out of memory");
    const char *dir = wordnet_dir ? wordnet_dir : getenv("VT_WORDNET_DIR");
    if (!dir || !*dir) dir = "/usr/share/wordnet";
    if (strlen(dir) >= sizeof (*env)->wordnet_dir) {
        free(*env);
        *env = NULL;
        return vt_fail(err, VT_ERR_RANGE, "shift env: WordNet path too long");
    }
    strcpy((*env)->wordnet_dir, dir);
    pthread_mutex_init(&(*env)->lock, NULL);
    return VT_OK;
}

void vt_shift_env_close(vt_shift_env *env) {
    if (!env) return;
    vt_wordnet_close(env->wn);
    pthread_mutex_destroy(&env->lock);
    free(env);
}

vt_status vt_shift_env_wordnet(vt_shift_env *env, const vt_wordnet **wn, vt_error *err) {
    *wn = NULL;
    if (!env) return vt_fail(err, VT_ERR_ARG, "this shift needs WordNet: pass a vt_shift_env");
    pthread_mutex_lock(&env->lock);
    if (!env->tried) {
        env->tried = 1;
        vt_error_clear(&env->load_err);
        vt_wordnet_open(env->wordnet_dir, &env->wn, &env->load_err);
    }
    vt_status st = VT_OK;
    if (env->wn) *wn = env->wn;
    else st = vt_fail(err, env->load_err.code, "%s", env->load_err.msg);
    pthread_mutex_unlock(&env->lock);
    return st;
}
