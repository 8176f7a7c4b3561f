/*
 * exporter/assets.c - the files of the web page the metrics server serves
 * at "/": the page's own files, compiled in from web/ (web/embed.cmake
 * generates the table), and its chart library, d3.js from Debian's libjs-d3,
 * which qstatsd reads once at start from the path set at build time
 * (QS_D3_JS) rather than carrying a convenience copy of it.  Without that
 * file the page still works: it shows its numbers as tables and says the
 * charts are unavailable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#ifndef QS_D3_JS
#define QS_D3_JS "/usr/share/javascript/d3/d3.min.js"
#endif

/* d3 3.5.17's d3.min.js is 150 KiB; anything far larger is not it. */
#define D3_MAX_BYTES (8u << 20)

extern const qs_asset qs_web_assets[];
extern const size_t qs_web_assets_n;

/* A handful of files: a scan of the table is as quick as a hash. */
const qs_asset *qs_exporter_find_asset(const char *path)
{
    for (size_t i = 0; i < qs_web_assets_n; i++)
        if (!strcmp(qs_web_assets[i].path, path))
            return &qs_web_assets[i];
    return NULL;
}

const char *qs_exporter_default_d3(void)
{
    return QS_D3_JS;
}

bool qs_exporter_load_d3(qs_asset *out, const char *file, qs_error **errp)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        qs_error_setg(errp, "%s: %s", file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size > D3_MAX_BYTES) {
        qs_error_setg(errp, "%s: not a regular file of 1 to %u bytes", file, D3_MAX_BYTES);
        close(fd);
        return false;
    }
    unsigned char *data = qs_malloc((size_t)st.st_size);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            qs_error_setg(errp, "%s: %s", file, n < 0 ? strerror(errno) : "shorter than its size");
            free(data);
            close(fd);
            return false;
        }
        got += (size_t)n;
    }
    close(fd);
    *out = (qs_asset){ .path = QS_D3_URL, .content_type = "text/javascript; charset=utf-8",
                       .data = data, .len = got };
    return true;
}
