/* File-system helpers: durable whole-file writes, recursive mkdir/remove. */
#include "common/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

vt_status vt_read_file(const char *path, size_t max_bytes, char **data, size_t *len, vt_error *err) {
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vt_fail_errno(err, VT_ERR_IO, "%s: cannot open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return vt_fail_errno(err, VT_ERR_IO, "%s: cannot stat", path);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return vt_fail(err, VT_ERR_IO, "%s: is a directory, expected a file", path);
    }
    if ((size_t)st.st_size > max_bytes) {
        close(fd);
        return vt_fail(err, VT_ERR_RANGE, "%s: %lld bytes exceeds the limit of %zu", path,
                       (long long)st.st_size, max_bytes);
    }
    size_t cap = (size_t)st.st_size;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return vt_fail(err, VT_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap + 1);
    }
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            free(buf);
            close(fd);
            return vt_fail_errno(err, VT_ERR_IO, "%s: read failed at byte %zu", path, got);
        }
        if (r == 0) break; /* file shrank under us: return what is there */
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return VT_OK;
}

void vt_dirname(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
    } else if (slash == path) {
        snprintf(out, cap, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= cap) n = cap - 1;
        memcpy(out, path, n);
        out[n] = '\0';
    }
}

vt_status vt_fsync_dir(const char *dir, vt_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return vt_fail_errno(err, VT_ERR_IO, "%s: cannot open directory", dir);
    int rc = fsync(fd);
    close(fd);
    if (rc != 0) return vt_fail_errno(err, VT_ERR_IO, "%s: fsync failed", dir);
    return VT_OK;
}

vt_status vt_fsync_path(const char *path, vt_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vt_fail_errno(err, VT_ERR_IO, "%s: cannot open", path);
    int rc = fsync(fd);
    close(fd);
    if (rc != 0) return vt_fail_errno(err, VT_ERR_IO, "%s: fsync failed", path);
    return VT_OK;
}

vt_status vt_write_file_atomic(const char *path, const void *data, size_t len, vt_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return vt_fail(err, VT_ERR_RANGE, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return vt_fail_errno(err, VT_ERR_IO, "%s: cannot create", tmp);
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            vt_fail_errno(err, VT_ERR_IO, "%s: write failed at byte %zu", path, len - left);
            close(fd);
            unlink(tmp);
            return VT_ERR_IO;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        vt_fail_errno(err, VT_ERR_IO, "%s: fsync failed", path);
        close(fd);
        unlink(tmp);
        return VT_ERR_IO;
    }
    if (close(fd) != 0) {
        unlink(tmp);
        return vt_fail_errno(err, VT_ERR_IO, "%s: close failed", path);
    }
    if (rename(tmp, path) != 0) {
        vt_fail_errno(err, VT_ERR_IO, "%s: rename into place failed", path);
        unlink(tmp);
        return VT_ERR_IO;
    }
    char dir[4096];
    vt_dirname(path, dir, sizeof dir);
    return vt_fsync_dir(dir, err);
}

vt_status vt_mkdir_p(const char *path, vt_error *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return vt_fail(err, VT_ERR_ARG, "invalid directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return vt_fail_errno(err, VT_ERR_IO, "%s: cannot create directory", buf);
            if (saved == '\0') break;
            *p = saved;
        }
    }
    if (!vt_is_dir(path)) return vt_fail(err, VT_ERR_IO, "%s: exists and is not a directory", path);
    return VT_OK;
}

static int remove_rec(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return -1;
        struct dirent *e;
        int rc = 0;
        while (rc == 0 && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char child[4096];
            if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child) {
                errno = ENAMETOOLONG;
                rc = -1;
                break;
            }
            rc = remove_rec(child);
        }
        closedir(d);
        return rc == 0 ? rmdir(path) : rc;
    }
    return unlink(path);
}

vt_status vt_remove_tree(const char *path, vt_error *err) {
    if (!path || !*path || !strcmp(path, "/"))
        return vt_fail(err, VT_ERR_ARG, "refusing to remove '%s'", path ? path : "(null)");
    if (remove_rec(path) != 0) return vt_fail_errno(err, VT_ERR_IO, "%s: cannot remove", path);
    return VT_OK;
}

bool vt_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

bool vt_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

vt_status vt_path_join(char *out, size_t cap, const char *a, const char *b, vt_error *err) {
    size_t la = strlen(a);
    const char *sep = (la && a[la - 1] == '/') ? "" : "/";
    if (b[0] == '/') sep = a = ""; /* an absolute b stands alone */
    if (snprintf(out, cap, "%s%s%s", a, sep, b) >= (int)cap)
        return vt_fail(err, VT_ERR_RANGE, "path too long: %s/%s", a, b);
    return VT_OK;
}
