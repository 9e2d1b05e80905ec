#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

int cg_file_read(const char *path, char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cg_error_set(CG_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = cg_xmalloc(cap);
    for (;;) {
        if (cap - n < 4096) buf = cg_xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return cg_error_set(CG_ERR_IO, "error reading %s", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return CG_OK;
}

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void fsync_parent_dir(const char *path) {
    char *copy = cg_xstrdup(path);
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(copy);
}

int cg_file_write_atomic(const char *path, const void *data, size_t len) {
    char *tmp = cg_xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = cg_error_set(CG_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        int rc = cg_error_set(CG_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return rc;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int rc = cg_error_set(CG_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    fsync_parent_dir(path);
    return CG_OK;
}

int cg_file_append(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return cg_error_set(CG_ERR_IO, "cannot open %s for append: %s", path, strerror(errno));
    int bad = write_all(fd, data, len) != 0 || fsync(fd) != 0;
    int saved = errno;
    close(fd);
    if (bad) return cg_error_set(CG_ERR_IO, "cannot append to %s: %s", path, strerror(saved));
    return CG_OK;
}

int cg_mkdir_p(const char *path) {
    if (!path || !*path) return CG_OK;
    char *p = cg_xstrdup(path);
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                int rc = cg_error_set(CG_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
                free(p);
                return rc;
            }
            struct stat st;
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
                int rc = cg_error_set(CG_ERR_IO, "%s exists and is not a directory", p);
                free(p);
                return rc;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return CG_OK;
}

int cg_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int cg_self_exe(char *buf, size_t n, int dir_only) {
    if (n == 0) return -1;
    ssize_t len = readlink("/proc/self/exe", buf, n - 1);
    if (len <= 0 || (size_t)len >= n - 1) {
        buf[0] = 0;
        return -1;
    }
    buf[len] = 0;
    char *slash = dir_only ? strrchr(buf, '/') : NULL;
    if (slash) *slash = 0;
    return 0;
}

char *cg_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir);
    if (n == 0) return cg_xstrdup(name);
    return cg_xasprintf("%s%s%s", dir, dir[n - 1] == '/' ? "" : "/", name);
}
