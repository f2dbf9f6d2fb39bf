/*
 * libstamp.so: preloaded into a save helper by the realxen jobs' timing shim (timed_helper in
 * common.sh), it appends "ctor NS" when the process's constructors run (after exec and the
 * dynamic loader, before main) and "dtor NS" when its destructors run (at exit(), after main's
 * work) to $XSR_STAMP_FILE (CLOCK_REALTIME nanoseconds, the clock `date +%s%N` reads). The
 * same library in Xen's libxl-save-helper and in xsr times both alike: start-up, work, exit.
 * At exit it also appends "rusage UTIME_US STIME_US MINFLT MAJFLT" (getrusage of the process
 * so far): where the work's time goes, CPU in user space, in the kernel (and so in Xen's
 * hypercalls and page-table updates), and how many page faults.
 */
#include <sys/resource.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Appends one line to $XSR_STAMP_FILE, if set. */
static void append(const char *fmt, ...)
{
    const char *path = getenv("XSR_STAMP_FILE");
    va_list ap;
    FILE *f;

    if (!path || !(f = fopen(path, "a")))
        return;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static void stamp(const char *what)
{
    struct timespec t;

    if (!clock_gettime(CLOCK_REALTIME, &t))
        append("%s %lld\n", what, (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
}

static void usage(void)
{
    struct rusage r;

    if (!getrusage(RUSAGE_SELF, &r))
        append("rusage %lld %lld %ld %ld\n", (long long)r.ru_utime.tv_sec * 1000000LL + r.ru_utime.tv_usec,
               (long long)r.ru_stime.tv_sec * 1000000LL + r.ru_stime.tv_usec, r.ru_minflt, r.ru_majflt);
}

__attribute__((constructor)) static void at_start(void) { stamp("ctor"); }

__attribute__((destructor)) static void at_exit(void)
{
    stamp("dtor");
    usage();
}
