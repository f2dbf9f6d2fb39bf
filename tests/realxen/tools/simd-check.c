/* simd-check: does this machine keep each thread's vector registers across context switches?
 *
 * Diagnostic for the nested realxen host (Xen 4.17 PV dom0 under QEMU TCG): several threads,
 * more than there are CPUs, each load all 16 YMM (or XMM) registers with a pattern of their own,
 * give the CPU away (sched_yield, or spin until the timer preempts them), store the registers and
 * compare them with the pattern. A mismatch means the OS/hypervisor/emulator below lost or mixed
 * register state. The `memcpy` mode does the same through glibc's memcpy (which picks its AVX2 /
 * SSE2 variant at run time) with a byte-by-byte scalar check.
 *
 * usage: simd-check MODE THREADS SECONDS
 *   MODE: ymm-yield | ymm-spin | xmm-yield | xmm-spin | x87-yield | x87-spin | mmx-yield |
 *   mmx-spin | memcpy | ymm-selftest (the check's own
 *   negative control: upper halves zeroed on purpose, must report bad high-128 lanes)
 * Prints one line per mode and exits 1 when any mismatch was seen.
 * Build: gcc -O2 -static -pthread -fno-tree-vectorize -o simd-check simd-check.c
 * (Written for this diagnosis; no library does this check.)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>

static int mode_ymm, mode_yield, mode_memcpy, mode_selftest, mode_x87, mode_mmx;
static double seconds;

struct result {
    uint64_t iters, bad_iters, bad_lo, bad_hi;
    char first[512];
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define LOAD_Y(i) "vmovdqu " #i "*32(%[in]), %%ymm" #i "\n\t"
#define STORE_Y(i) "vmovdqu %%ymm" #i ", " #i "*32(%[out])\n\t"
#define LOAD_X(i) "movdqu " #i "*32(%[in]), %%xmm" #i "\n\t"
#define STORE_X(i) "movdqu %%xmm" #i ", " #i "*32(%[out])\n\t"
#define ALL(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
/* the CPU given away: sched_yield(2) (nr 24) straight from the asm block, or ~1M spins */
#define GIVE_AWAY_YIELD "mov $24, %%eax\n\tsyscall\n\t"
#define GIVE_AWAY_SPIN "mov $1000000, %%ecx\n\t1: dec %%ecx\n\tjnz 1b\n\t"
#define CLOBBERS "rax", "rcx", "r11", "memory", \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", \
    "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

#define FILD(i) "fildq " #i "*8(%[in])\n\t"
#define FISTP(i) "fistpq " #i "*8(%[out])\n\t"
#define ALL8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define LOAD_M(i) "movq " #i "*8(%[in]), %%mm" #i "\n\t"
#define STORE_M(i) "movq %%mm" #i ", " #i "*8(%[out])\n\t"
#define X87_CLOBBERS "rax", "rcx", "r11", "memory", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)"
#define MMX_CLOBBERS "rax", "rcx", "r11", "memory", "mm0", "mm1", "mm2", "mm3", "mm4", "mm5", "mm6", "mm7"

static void regs_round(const uint64_t *in, uint64_t *out) {
    /* x87: 8 pushes, then 8 pops (out[k] = in[7 - k]); mmx: mm0..mm7 (legacy, non-SSE opcodes) */
    if (mode_x87 && mode_yield)
        __asm__ volatile(ALL8(FILD) GIVE_AWAY_YIELD ALL8(FISTP) : : [in] "r"(in), [out] "r"(out) : X87_CLOBBERS);
    else if (mode_x87)
        __asm__ volatile(ALL8(FILD) GIVE_AWAY_SPIN ALL8(FISTP) : : [in] "r"(in), [out] "r"(out) : X87_CLOBBERS);
    else if (mode_mmx && mode_yield)
        __asm__ volatile(ALL8(LOAD_M) GIVE_AWAY_YIELD ALL8(STORE_M) "emms\n\t" : : [in] "r"(in), [out] "r"(out) : MMX_CLOBBERS);
    else if (mode_mmx)
        __asm__ volatile(ALL8(LOAD_M) GIVE_AWAY_SPIN ALL8(STORE_M) "emms\n\t" : : [in] "r"(in), [out] "r"(out) : MMX_CLOBBERS);
    else if (mode_selftest) /* the check must see upper halves lost: vzeroupper before the stores */
        __asm__ volatile(ALL(LOAD_Y) GIVE_AWAY_YIELD "vzeroupper\n\t" ALL(STORE_Y) : : [in] "r"(in), [out] "r"(out) : CLOBBERS);
    else if (mode_ymm && mode_yield)
        __asm__ volatile(ALL(LOAD_Y) GIVE_AWAY_YIELD ALL(STORE_Y) "vzeroupper\n\t" : : [in] "r"(in), [out] "r"(out) : CLOBBERS);
    else if (mode_ymm)
        __asm__ volatile(ALL(LOAD_Y) GIVE_AWAY_SPIN ALL(STORE_Y) "vzeroupper\n\t" : : [in] "r"(in), [out] "r"(out) : CLOBBERS);
    else if (mode_yield)
        __asm__ volatile(ALL(LOAD_X) GIVE_AWAY_YIELD ALL(STORE_X) : : [in] "r"(in), [out] "r"(out) : CLOBBERS);
    else
        __asm__ volatile(ALL(LOAD_X) GIVE_AWAY_SPIN ALL(STORE_X) : : [in] "r"(in), [out] "r"(out) : CLOBBERS);
}

static void *regs_thread(void *arg) {
    struct result *r = arg;
    uint64_t in[64] __attribute__((aligned(32))), out[64] __attribute__((aligned(32)));
    uint64_t id = (uint64_t)(uintptr_t)r;
    double end = now() + seconds;
    /* the values checked: 16 registers x 4 (ymm) or 2 (xmm) 64-bit lanes at in[reg * 4 + lane];
       x87 and mmx: 8 registers of 64 bits at in[0..7] */
    int scalar = mode_x87 || mode_mmx;
    int regs = scalar ? 8 : 16, lanes = scalar ? 1 : mode_ymm ? 4 : 2;
    while (now() < end) {
        uint64_t k = r->iters++;
        for (int i = 0; i < 64; i++)
            in[i] = (id * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(i / 4) << 56) ^ ((uint64_t)(i % 4) << 52) ^ k;
        if (mode_x87) /* fild/fistp are exact for any int64 but 1<<63; keep the values positive */
            for (int i = 0; i < 8; i++) in[i] &= 0x7fffffffffffffffull;
        memset(out, 0, sizeof out);
        regs_round(in, out);
        if (mode_x87) /* popped in reverse order */
            for (int i = 0; i < 4; i++) { uint64_t t = out[i]; out[i] = out[7 - i]; out[7 - i] = t; }
        int bad = 0;
        for (int reg = 0; reg < regs; reg++)
            for (int j = 0; j < lanes; j++) {
                int at = scalar ? reg : reg * 4 + j;
                if (in[at] == out[at]) continue;
                if (j < 2) r->bad_lo++; else r->bad_hi++;
                if (!r->first[0])
                    snprintf(r->first, sizeof r->first, "iter %llu reg %d lane %d: want %016llx got %016llx",
                             (unsigned long long)k, reg, j, (unsigned long long)in[at], (unsigned long long)out[at]);
                bad = 1;
            }
        r->bad_iters += bad;
    }
    return NULL;
}

static void *memcpy_thread(void *arg) {
    struct result *r = arg;
    enum { N = 1 << 16 };
    unsigned char *src = malloc(N), *dst = malloc(N);
    uint64_t id = (uint64_t)(uintptr_t)r;
    double end = now() + seconds;
    while (now() < end) {
        uint64_t k = r->iters++;
        size_t len = 32 + (k * 7919) % (N - 64);
        for (size_t i = 0; i < N; i += 8) {
            uint64_t v = (id * 0x9E3779B97F4A7C15ull) ^ (i << 20) ^ k;
            memcpy(src + i, &v, 8);
        }
        memcpy(dst, src, len);
        int bad = 0;
        for (volatile size_t i = 0; i < len; i++)
            if (dst[i] != src[i]) {
                r->bad_lo++;
                if (!r->first[0])
                    snprintf(r->first, sizeof r->first, "iter %llu len %zu byte %zu: want %02x got %02x",
                             (unsigned long long)k, len, (size_t)i, src[i], dst[i]);
                bad = 1;
            }
        r->bad_iters += bad;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s ymm-yield|ymm-spin|xmm-yield|xmm-spin|x87-yield|x87-spin|mmx-yield|mmx-spin|memcpy|ymm-selftest THREADS SECONDS\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    mode_ymm = !strncmp(mode, "ymm", 3);
    mode_yield = strstr(mode, "yield") != NULL;
    mode_memcpy = !strcmp(mode, "memcpy");
    mode_selftest = !strcmp(mode, "ymm-selftest");
    mode_x87 = !strncmp(mode, "x87", 3);
    mode_mmx = !strncmp(mode, "mmx", 3);
    if (!mode_memcpy && strcmp(mode, "ymm-yield") && strcmp(mode, "ymm-spin") && strcmp(mode, "xmm-yield") &&
        strcmp(mode, "xmm-spin") && !mode_selftest &&
        strcmp(mode, "x87-spin") && strcmp(mode, "x87-yield") && strcmp(mode, "mmx-spin") && strcmp(mode, "mmx-yield")) {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    if (mode_ymm && !__builtin_cpu_supports("avx")) {
        printf("SIMD-CHECK %s: no AVX on this CPU, skipped\n", mode);
        return 0;
    }
    int n = atoi(argv[2]);
    seconds = atof(argv[3]);
    if (n < 1 || n > 64 || seconds <= 0) return 2;
    struct result *res = calloc(n, sizeof *res);
    pthread_t th[64];
    /* SIMD_PIN=1: thread i runs on CPU i % CPUs only (one thread per CPU: no OS switches between
       the checking threads themselves) */
    const char *pin = getenv("SIMD_PIN");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 0; i < n; i++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (pin && *pin == '1' && cpus > 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(i % cpus, &set);
            pthread_attr_setaffinity_np(&attr, sizeof set, &set);
        }
        pthread_create(&th[i], &attr, mode_memcpy ? memcpy_thread : regs_thread, &res[i]);
        pthread_attr_destroy(&attr);
    }
    uint64_t iters = 0, bad = 0, lo = 0, hi = 0;
    const char *first = "";
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        iters += res[i].iters;
        bad += res[i].bad_iters;
        lo += res[i].bad_lo;
        hi += res[i].bad_hi;
        if (!first[0] && res[i].first[0]) first = res[i].first;
    }
    printf("SIMD-CHECK %s threads=%d seconds=%g: %llu rounds, %llu bad rounds (%llu bad low-128 lanes/bytes, %llu bad "
           "high-128 lanes)%s%s\n",
           mode, n, seconds, (unsigned long long)iters, (unsigned long long)bad, (unsigned long long)lo,
           (unsigned long long)hi, first[0] ? "; first: " : "", first);
    return bad ? 1 : 0;
}
