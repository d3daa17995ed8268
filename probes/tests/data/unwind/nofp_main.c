/* Known-answer program for the DWARF unwinding tests (issue 12), built
 * without frame pointers and linked against libqfcnofp.so. Usage:
 *   nofp burn MS        burn CPU MS milliseconds six calls below main
 *   nofp sync N FILE    N fdatasync calls six calls below main
 * Prints `ready <pid>`, waits for a line on stdin, works, prints `done`,
 * then waits for stdin to close (so the probe can read its maps). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NI __attribute__((noinline, used))

uint64_t qfc_nofp_a(uint64_t mode, uint64_t a, uint64_t b);

NI uint64_t qfc_app_enter(uint64_t mode, uint64_t a, uint64_t b) {
    volatile uint64_t pad[4];
    for (int i = 0; i < 4; i++)
        pad[i] = a ^ (uint64_t)i;
    uint64_t r = qfc_nofp_a(mode, a, b);
    return r + pad[r & 3];
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "burn") != 0 && strcmp(argv[1], "sync") != 0) ||
        (strcmp(argv[1], "sync") == 0 && argc < 4)) {
        fprintf(stderr, "usage: %s burn MS | sync N FILE\n", argv[0]);
        return 2;
    }
    int sync = strcmp(argv[1], "sync") == 0;
    uint64_t n = strtoull(argv[2], NULL, 10);
    int fd = -1;
    if (sync) {
        fd = open(argv[3], O_CREAT | O_WRONLY | O_TRUNC, 0600);
        if (fd < 0) {
            perror(argv[3]);
            return 1;
        }
    }
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    uint64_t r = sync ? qfc_app_enter(1, (uint64_t)fd, n) : qfc_app_enter(0, n, 0);
    printf("done %llu\n", (unsigned long long)r);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin))
        ;
    return 0;
}
