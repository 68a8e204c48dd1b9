/* A live ledgerd for the C tests: the real binary on a temporary data directory and a free port. */
#ifndef TOKENLEDGER_TEST_LEDGERD_H
#define TOKENLEDGER_TEST_LEDGERD_H

#include <stdint.h>
#include <sys/types.h>

typedef struct ledgerd {
    char directory[256]; /* the temporary directory; the data directory is <directory>/ledger-data */
    char data_dir[300];
    uint16_t port;
    pid_t pid;
    int banner_fd; /* ledgerd's stdout, kept open so that later lines never meet a closed pipe */
} ledgerd;

/* Starts $LEDGERD (default ../../.build/debug/ledgerd) in a new temporary directory on
 * 127.0.0.1:0, or, with `port` non-zero, in d->directory again on that port. Returns 0 on success. */
int ledgerd_start(ledgerd *d, uint16_t port);

/* SIGTERM and wait; returns the exit status (0 for a clean drain), -1 if it did not stop in 30 s. */
int ledgerd_stop(ledgerd *d);

/* Removes the temporary directory. */
void ledgerd_remove(ledgerd *d);

#endif
