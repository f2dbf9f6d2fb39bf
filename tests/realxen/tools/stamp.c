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
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void stamp(const char *what)
{
    const char *path = getenv("XSR_STAMP_FILE");
    struct timespec t;
    FILE *f;

    if (!path || clock_gettime(CLOCK_REALTIME, &t))
        return;
    f = fopen(path, "a");
    if (!f)
        return;
    fprintf(f, "%s %lld\n", what, (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
    fclose(f);
}

__attribute__((constructor)) static void at_start(void) { stamp("ctor"); }
static void usage(void)
{
    const char *path = getenv("XSR_STAMP_FILE");
    struct rusage r;
    FILE *f;

    if (!path || getrusage(RUSAGE_SELF, &r))
        return;
    f = fopen(path, "a");
    if (!f)
        return;
    fprintf(f, "rusage %lld %lld %ld %ld\n",
            (long long)r.ru_utime.tv_sec * 1000000LL + r.ru_utime.tv_usec,
            (long long)r.ru_stime.tv_sec * 1000000LL + r.ru_stime.tv_usec, r.ru_minflt, r.ru_majflt);
    fclose(f);
}

__attribute__((destructor)) static void at_exit(void)
{
    stamp("dtor");
    usage();
}
