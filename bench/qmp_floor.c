/*
 * qmp_floor.c - the hardware floor for a QMP stats query, used by
 * bench/qmp_latency.py as the yardstick qstatsd is measured against where
 * there is no QEMU to compare with (no /dev/kvm).
 *
 * A number such as "0.9 ms per query-stats" says little on its own: it
 * depends on the machine, its load and the size of the VM.  So this server
 * does only the work no implementation can avoid and qstatsd's cost is
 * reported as a ratio to it, measured in the same run by the same client:
 *
 *   - receive the request line (read);
 *   - pread the data block of every stats file qstatsd preads for that
 *     request (the VM's file for target vm, each vCPU's for target vcpu,
 *     none for schemas or query-name), from the same recording directory;
 *   - send a reply of exactly the bytes qstatsd sent for that request
 *     (captured from qstatsd beforehand and handed over as a file).
 *
 * No JSON parsing, no validation, no encoding, no event loop: a request is
 * recognised by comparing its bytes with the known request texts.  The
 * ratio qstatsd/floor is therefore what qstatsd's parsing, registry walk,
 * JSON encoding and event loop cost on top of syscalls and copying bytes.
 * The replies' content is qstatsd's, frozen at capture time (the recording
 * does not change during a benchmark).
 *
 * Usage: qmp_floor --socket PATH --recording DIR
 *                  [--answer vm|vcpus|none REQUEST_FILE REPLY_FILE]...
 * REQUEST_FILE holds one request line as the client sends it; the first
 * word says which stats files to pread when it arrives.  qmp_capabilities
 * and quit are answered with an empty return (quit then exits).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define QS_FLOOR_MAX_ANSWERS 16
#define QS_FLOOR_MAX_VCPUS 4096

static const char qs_floor_greeting[] =
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 0}, "
    "\"package\": \"qmp_floor\"}, \"capabilities\": []}}\r\n";
static const char qs_floor_empty[] = "{\"return\": {}}\r\n";
static const char qs_floor_unknown[] =
    "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"qmp_floor: unknown request\"}}\r\n";

/* One stats file: where its data block is, read per query like qstatsd. */
typedef struct qs_floor_file {
    int fd;
    off_t data_offset;
    size_t data_len;
} qs_floor_file;

typedef enum { QS_FLOOR_NONE, QS_FLOOR_VM, QS_FLOOR_VCPUS } qs_floor_reads;

typedef struct qs_floor_answer {
    char *request;         /* the line, without its line ending */
    size_t request_len;
    char *reply;
    size_t reply_len;
    qs_floor_reads reads;
} qs_floor_answer;

typedef struct qs_floor {
    qs_floor_file vm;
    qs_floor_file *vcpus;
    unsigned nvcpus;
    qs_floor_answer answers[QS_FLOOR_MAX_ANSWERS];
    unsigned nanswers;
    uint8_t *block;        /* one reused buffer for every pread */
    size_t block_len;
    int listen_fd;
} qs_floor;

static void qs_floor_die(const char *what)
{
    fprintf(stderr, "qmp_floor: %s: %s\n", what, errno ? strerror(errno) : "invalid");
    exit(1);
}

static char *qs_floor_slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        qs_floor_die(path);
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    if (n != st.st_size)
        qs_floor_die(path);
    close(fd);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* The data block's place from the header (data_offset is its 6th u32)
 * and the file size: read once at startup, as qstatsd parses once. */
static bool qs_floor_file_open(qs_floor_file *f, const char *path)
{
    uint32_t header[6];
    struct stat st;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0)
        return false;
    if (pread(f->fd, header, sizeof(header), 0) != (ssize_t)sizeof(header) ||
        fstat(f->fd, &st) < 0 || header[5] >= (uint64_t)st.st_size)
        qs_floor_die(path);
    f->data_offset = header[5];
    f->data_len = (size_t)st.st_size - header[5];
    return true;
}

static void qs_floor_grow_block(qs_floor *fl, size_t len)
{
    if (len > fl->block_len) {
        fl->block = realloc(fl->block, len);
        if (!fl->block)
            qs_floor_die("buffer");
        fl->block_len = len;
    }
}

/* DIR/vm.bin and DIR/vcpu0.bin ... up to the first missing one. */
static void qs_floor_open_recording(qs_floor *fl, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/vm.bin", dir);
    if (!qs_floor_file_open(&fl->vm, path))
        qs_floor_die(path);
    qs_floor_grow_block(fl, fl->vm.data_len);
    fl->vcpus = calloc(QS_FLOOR_MAX_VCPUS, sizeof(*fl->vcpus));
    if (!fl->vcpus)
        qs_floor_die("vcpus");
    for (;;) {
        snprintf(path, sizeof(path), "%s/vcpu%u.bin", dir, fl->nvcpus);
        if (fl->nvcpus == QS_FLOOR_MAX_VCPUS || !qs_floor_file_open(&fl->vcpus[fl->nvcpus], path))
            break;
        qs_floor_grow_block(fl, fl->vcpus[fl->nvcpus++].data_len);
    }
}

static void qs_floor_add_answer(qs_floor *fl, const char *reads, const char *req,
                                const char *reply)
{
    if (fl->nanswers == QS_FLOOR_MAX_ANSWERS) {
        errno = 0;
        qs_floor_die("too many --answer");
    }
    qs_floor_answer *a = &fl->answers[fl->nanswers++];
    a->reads = !strcmp(reads, "vm") ? QS_FLOOR_VM
               : !strcmp(reads, "vcpus") ? QS_FLOOR_VCPUS : QS_FLOOR_NONE;
    a->request = qs_floor_slurp(req, &a->request_len);
    while (a->request_len && (a->request[a->request_len - 1] == '\n' ||
                              a->request[a->request_len - 1] == '\r'))
        a->request_len--;
    a->reply = qs_floor_slurp(reply, &a->reply_len);
}

/* ---- serving ------------------------------------------------------------ */

static void qs_floor_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;                       /* the client went away */
        p += n;
        len -= (size_t)n;
    }
}

static void qs_floor_read_file(qs_floor *fl, const qs_floor_file *f)
{
    if (pread(f->fd, fl->block, f->data_len, f->data_offset) != (ssize_t)f->data_len)
        qs_floor_die("pread");
}

static const qs_floor_answer *qs_floor_match(const qs_floor *fl, const char *line, size_t len)
{
    for (unsigned i = 0; i < fl->nanswers; i++) {
        const qs_floor_answer *a = &fl->answers[i];
        if (a->request_len == len && !memcmp(a->request, line, len))
            return a;
    }
    return NULL;
}

/* One request line; returns false on quit. */
static bool qs_floor_handle(qs_floor *fl, int fd, const char *line, size_t len)
{
    const qs_floor_answer *a = qs_floor_match(fl, line, len);
    if (a) {
        if (a->reads == QS_FLOOR_VM)
            qs_floor_read_file(fl, &fl->vm);
        else if (a->reads == QS_FLOOR_VCPUS)
            for (unsigned i = 0; i < fl->nvcpus; i++)
                qs_floor_read_file(fl, &fl->vcpus[i]);
        qs_floor_send(fd, a->reply, a->reply_len);
        return true;
    }
    /* Negotiation and shutdown are outside the timed region. */
    bool quit = memmem(line, len, "\"quit\"", 6) != NULL;
    if (quit || memmem(line, len, "qmp_capabilities", 16))
        qs_floor_send(fd, qs_floor_empty, sizeof(qs_floor_empty) - 1);
    else
        qs_floor_send(fd, qs_floor_unknown, sizeof(qs_floor_unknown) - 1);
    return !quit;
}

/* Serves one connection until EOF (true) or quit (false). */
static bool qs_floor_serve(qs_floor *fl, int fd)
{
    char buf[65536];
    size_t have = 0;
    qs_floor_send(fd, qs_floor_greeting, sizeof(qs_floor_greeting) - 1);
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof(buf) - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return true;
        have += (size_t)n;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
            size_t len = (size_t)(nl - start);
            if (len && start[len - 1] == '\r')
                len--;
            if (!qs_floor_handle(fl, fd, start, len))
                return false;
            start = nl + 1;
        }
        have -= (size_t)(start - buf);
        memmove(buf, start, have);
        if (have == sizeof(buf))
            have = 0;                     /* an overlong line: dropped */
    }
}

static int qs_floor_listen(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        qs_floor_die(path);
    }
    strcpy(addr.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 4) < 0)
        qs_floor_die(path);
    return fd;
}

/* 1024 vCPU files plus a few; the usual soft limit is 1024. */
static void qs_floor_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void qs_floor_usage(void)
{
    fprintf(stderr, "usage: qmp_floor --socket PATH --recording DIR "
            "[--answer vm|vcpus|none REQUEST_FILE REPLY_FILE]...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    qs_floor fl = { 0 };
    const char *sock = NULL, *dir = NULL;

    qs_floor_raise_fd_limit();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc)
            sock = argv[++i];
        else if (!strcmp(argv[i], "--recording") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--answer") && i + 3 < argc) {
            qs_floor_add_answer(&fl, argv[i + 1], argv[i + 2], argv[i + 3]);
            i += 3;
        } else
            qs_floor_usage();
    }
    if (!sock || !dir)
        qs_floor_usage();
    qs_floor_open_recording(&fl, dir);
    fl.listen_fd = qs_floor_listen(sock);
    fprintf(stderr, "qmp_floor: %u vCPU files from %s, %u answers, on %s\n",
            fl.nvcpus, dir, fl.nanswers, sock);
    for (;;) {
        int fd = accept4(fl.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            qs_floor_die("accept");
        }
        bool more = qs_floor_serve(&fl, fd);
        close(fd);
        if (!more)
            break;
    }
    unlink(sock);
    return 0;
}
