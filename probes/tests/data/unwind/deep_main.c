/* Known-answer program for joining a copied stack to the frame-pointer
 * chain (issue 12): built WITH frame pointers, it burns CPU in
 * `qfc_deep_burn`, seven calls below main, under five functions whose 4 KiB
 * frames make the stack much deeper than a small stack copy. The DWARF walk
 * of the copy is cut by the copy size; the kernel's frame-pointer walk of
 * the same stack holds the rest. Usage:
 *   deep burn MS        burn CPU MS milliseconds
 *   deep thread MS      the same in a new thread (`qfc_deep_thread`), whose
 *                       frame-pointer chain ends at glibc's thread entry
 * Prints `ready <pid>`, waits for a line on stdin, works, prints `done`,
 * then waits for stdin to close (so the probe can read its maps). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NI __attribute__((noinline, used))

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

NI uint64_t qfc_deep_burn(uint64_t ms) {
    uint64_t end = now_ms() + ms, x = 0x9e3779b97f4a7c15ull;
    while (now_ms() < end)
        for (int i = 0; i < 100000; i++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

NI uint64_t qfc_deep_near(uint64_t ms) { return qfc_deep_burn(ms) + 1; }

/* A 4 KiB frame that the compiler cannot drop. */
#define BIG(name, next)                                          \
    NI uint64_t name(uint64_t ms) {                              \
        volatile uint8_t pad[4096];                              \
        for (int i = 0; i < 4096; i += 512)                      \
            pad[i] = (uint8_t)(ms + i);                          \
        uint64_t r = next(ms);                                   \
        return r + pad[r & 4095];                                \
    }
BIG(qfc_deep_5, qfc_deep_near)
BIG(qfc_deep_4, qfc_deep_5)
BIG(qfc_deep_3, qfc_deep_4)
BIG(qfc_deep_2, qfc_deep_3)
BIG(qfc_deep_1, qfc_deep_2)

NI void *qfc_deep_thread(void *arg) {
    uint64_t *ms = arg;
    *ms = qfc_deep_1(*ms);
    return NULL;
}

int main(int argc, char **argv) {
    int thread = argc >= 3 && strcmp(argv[1], "thread") == 0;
    if (argc < 3 || (!thread && strcmp(argv[1], "burn") != 0)) {
        fprintf(stderr, "usage: %s burn|thread MS\n", argv[0]);
        return 2;
    }
    uint64_t ms = strtoull(argv[2], NULL, 10);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    uint64_t r = ms;
    pthread_t t;
    if (!thread)
        r = qfc_deep_1(ms);
    else if (pthread_create(&t, NULL, qfc_deep_thread, &r) != 0 || pthread_join(t, NULL) != 0)
        return 1;
    printf("done %llu\n", (unsigned long long)r);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin))
        ;
    return 0;
}
