/*
 * sched_threads.c - real threads for the sched provider's tests and its
 * cost benchmark: Python threads share the GIL, so a busy one never runs
 * alone and a sleeping one still wakes for the interpreter.  Built by the
 * test (or bench/sched_cost.py) with cc.
 *
 *     sched_threads SPEC...      SPEC = KIND[@CPU][*COUNT]
 *       busy          spins on a CPU until told to end
 *       sleep         blocks (never runs) until told to end
 *       tick:MS       sleeps MS ms, runs a moment, again and again
 *       @CPU          the thread pins itself to that CPU first
 *
 * Prints each thread's TID on a line of its own, in SPEC order, once all
 * of them run (and are pinned), then "ready".  Commands on stdin:
 * "end I" ends thread I (0-based) and answers "ended I" once it has been
 * joined (its TID is gone); end of input ends the program.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum kind { BUSY, SLEEP, TICK };

typedef struct worker {
    enum kind kind;
    int cpu;                 /* -1: not pinned */
    long period_ms;
    pid_t tid;
    atomic_bool end;
    bool joined;
    pthread_cond_t wake;     /* its own: ending one sleeper wakes no other */
    pthread_t thread;
} worker;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_started = PTHREAD_COND_INITIALIZER;
static size_t started;

static void *run(void *arg)
{
    worker *w = arg;
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0) {
            perror("sched_setaffinity");
            exit(2);
        }
    }
    pthread_mutex_lock(&lock);
    w->tid = (pid_t)syscall(SYS_gettid);
    started++;
    pthread_cond_signal(&all_started);
    while (w->kind == SLEEP && !atomic_load(&w->end))
        pthread_cond_wait(&w->wake, &lock);
    pthread_mutex_unlock(&lock);
    struct timespec nap = { w->period_ms / 1000, (w->period_ms % 1000) * 1000000L };
    volatile unsigned long spin = 0;
    while (!atomic_load_explicit(&w->end, memory_order_relaxed)) {
        if (w->kind == TICK)
            nanosleep(&nap, NULL);
        spin++;
    }
    return NULL;
}

/* KIND[@CPU][*COUNT] */
static size_t parse(const char *spec, worker *w)
{
    char *end;
    if (strncmp(spec, "busy", 4) == 0) {
        w->kind = BUSY;
        spec += 4;
    } else if (strncmp(spec, "sleep", 5) == 0) {
        w->kind = SLEEP;
        spec += 5;
    } else if (strncmp(spec, "tick:", 5) == 0) {
        w->kind = TICK;
        w->period_ms = strtol(spec + 5, &end, 10);
        spec = end;
    } else {
        fprintf(stderr, "bad thread spec: %s\n", spec);
        exit(2);
    }
    w->cpu = -1;
    if (*spec == '@') {
        w->cpu = (int)strtol(spec + 1, &end, 10);
        spec = end;
    }
    size_t count = 1;
    if (*spec == '*')
        count = strtoul(spec + 1, &end, 10);
    return count;
}

int main(int argc, char **argv)
{
    size_t n = 0, cap = 16;
    worker *w = calloc(cap, sizeof(*w));
    for (int i = 1; i < argc; i++) {
        worker proto = { 0 };
        size_t count = parse(argv[i], &proto);
        for (size_t k = 0; k < count; k++) {
            if (n == cap)
                w = realloc(w, (cap *= 2) * sizeof(*w));
            memset(&w[n], 0, sizeof(*w));
            w[n].kind = proto.kind;
            w[n].cpu = proto.cpu;
            w[n].period_ms = proto.period_ms;
            n++;
        }
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (size_t i = 0; i < n; i++) {
        pthread_cond_init(&w[i].wake, NULL);
        if (pthread_create(&w[i].thread, &attr, run, &w[i]) != 0) {
            fprintf(stderr, "pthread_create failed at thread %zu\n", i);
            return 2;
        }
    }
    pthread_mutex_lock(&lock);
    while (started < n)
        pthread_cond_wait(&all_started, &lock);
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; i < n; i++)
        printf("%d\n", (int)w[i].tid);
    printf("ready\n");
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof(line), stdin)) {
        size_t i;
        if (sscanf(line, "end %zu", &i) != 1 || i >= n || w[i].joined)
            continue;
        pthread_mutex_lock(&lock);
        atomic_store(&w[i].end, true);
        pthread_cond_signal(&w[i].wake);
        pthread_mutex_unlock(&lock);
        pthread_join(w[i].thread, NULL);
        w[i].joined = true;
        printf("ended %zu\n", i);
        fflush(stdout);
    }
    return 0;
}
