/* Known-answer library for the DWARF unwinding tests (issue 12): built
 * -O2 -fomit-frame-pointer -fno-optimize-sibling-calls, so that no function
 * keeps a frame record and only .eh_frame can walk through it. The chain
 * qfc_nofp_a -> _b -> _c -> _d -> qfc_nofp_burn (or qfc_nofp_sync) is
 * called from qfc_app_enter in the test binary, itself called by main:
 * the burner is six calls below main. Every level keeps a live local
 * array so that it has a stack frame of its own. */
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define NI __attribute__((noinline, used))

volatile uint64_t qfc_nofp_sink;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Burns CPU for `ms` milliseconds; the clock is read every 2^20 steps so
 * that nearly every sample lands in this function itself. */
NI uint64_t qfc_nofp_burn(uint64_t ms) {
    uint64_t end = now_ns() + ms * 1000000ull;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (;;) {
        for (int i = 0; i < (1 << 20); i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        qfc_nofp_sink = x;
        if (now_ns() >= end)
            return x;
    }
}

/* Calls fdatasync(fd) `count` times, writing one byte before each. */
NI uint64_t qfc_nofp_sync(uint64_t fd, uint64_t count) {
    uint64_t ok = 0;
    for (uint64_t i = 0; i < count; i++) {
        char b = (char)i;
        if (pwrite((int)fd, &b, 1, (off_t)i) == 1 && fdatasync((int)fd) == 0)
            ok++;
    }
    return ok;
}

#define LEVEL(name, next)                                                   \
    NI uint64_t name(uint64_t mode, uint64_t a, uint64_t b) {               \
        volatile uint64_t pad[8];                                           \
        for (int i = 0; i < 8; i++)                                         \
            pad[i] = a + (uint64_t)i;                                       \
        uint64_t r = next(mode, a, b);                                      \
        return r + pad[(a + r) & 7];                                        \
    }

NI uint64_t qfc_nofp_d(uint64_t mode, uint64_t a, uint64_t b) {
    volatile uint64_t pad[8];
    for (int i = 0; i < 8; i++)
        pad[i] = a + (uint64_t)i;
    uint64_t r = mode == 0 ? qfc_nofp_burn(a) : qfc_nofp_sync(a, b);
    return r + pad[(a + r) & 7];
}
/* Inlined into qfc_nofp_c: a frame that exists only in DWARF (the
 * symbolizer must show it between qfc_nofp_d and qfc_nofp_c). */
static inline __attribute__((always_inline)) uint64_t
qfc_nofp_c_inlined(uint64_t mode, uint64_t a, uint64_t b) {
    uint64_t r = qfc_nofp_d(mode, a, b);
    qfc_nofp_sink = r;
    return r;
}
LEVEL(qfc_nofp_c, qfc_nofp_c_inlined)
LEVEL(qfc_nofp_b, qfc_nofp_c)
LEVEL(qfc_nofp_a, qfc_nofp_b)
