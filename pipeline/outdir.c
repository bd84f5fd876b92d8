/* All-or-nothing output directories: temporary sibling + fsync + rename. */
#define _GNU_SOURCE /* syncfs: one flush for the thousands of files a generator writes */
#include "pipeline/outdir.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"

vt_status vt_outdir_begin(const char *dir, bool force, char *tmp, size_t cap, vt_error *err) {
    tmp[0] = '\0';
    if (!dir || !*dir) return vt_fail(err, VT_ERR_ARG, "empty output path");
    if (vt_path_exists(dir) && !force)
        return vt_fail(err, VT_ERR_STATE, "%s: already exists (remove it or pass --force)", dir);
    char parent[PATH_MAX];
    vt_dirname(dir, parent, sizeof parent);
    if (!vt_is_dir(parent))
        return vt_fail(err, VT_ERR_IO, "%s: parent directory %s does not exist", dir, parent);
    if (access(parent, W_OK | X_OK) != 0)
        return vt_fail_errno(err, VT_ERR_IO, "%s: cannot write to directory %s", dir, parent);
    if ((size_t)snprintf(tmp, cap, "%s.tmp.XXXXXX", dir) >= cap)
        return vt_fail(err, VT_ERR_ARG, "%s: path too long", dir);
    if (!mkdtemp(tmp)) {
        vt_status st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot create temporary directory", dir);
        tmp[0] = '\0';
        return st;
    }
    chmod(tmp, 0755);
    return VT_OK;
}

vt_status vt_outdir_commit(const char *tmp, const char *dir, bool force, vt_error *err) {
    vt_status st = VT_OK;
    int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) != 0) {
        st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot sync", tmp);
        if (fd >= 0) close(fd);
        goto fail;
    }
    close(fd);
    st = vt_fsync_dir(tmp, err);
    if (st != VT_OK) goto fail;
    char old[PATH_MAX + 16] = "";
    if (vt_path_exists(dir)) {
        if (!force) {
            st = vt_fail(err, VT_ERR_STATE, "%s: appeared while writing; not replacing it", dir);
            goto fail;
        }
        snprintf(old, sizeof old, "%s.old.XXXXXX", dir);
        if (!mkdtemp(old) || rename(dir, old) != 0) {
            st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot move the old directory aside", dir);
            goto fail;
        }
    }
    if (rename(tmp, dir) != 0) {
        st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot rename %s into place", dir, tmp);
        if (old[0]) rename(old, dir);
        goto fail;
    }
    char parent[PATH_MAX];
    vt_dirname(dir, parent, sizeof parent);
    st = vt_fsync_dir(parent, err);
    if (old[0]) vt_remove_tree(old, NULL);
    return st;
fail:
    vt_outdir_abort(tmp);
    return st;
}

void vt_outdir_abort(const char *tmp) {
    if (tmp && tmp[0]) vt_remove_tree(tmp, NULL);
}
