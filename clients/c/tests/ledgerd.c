#define _GNU_SOURCE
#include "ledgerd.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *ledgerd_binary(void) {
    const char *path = getenv("LEDGERD");
    return path != NULL && path[0] != '\0' ? path : "../../.build/debug/ledgerd";
}

/* Reads ledgerd's first stdout line ("ledgerd listening on 127.0.0.1:PORT ...") within 60 s. */
static int read_banner(int fd, char *line, size_t size) {
    size_t used = 0;
    while (used + 1 < size) {
        struct pollfd p = {fd, POLLIN, 0};
        int ready = poll(&p, 1, 60000);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return -1;
        ssize_t got = read(fd, line + used, 1);
        if (got <= 0) return -1;
        if (line[used] == '\n') break;
        used++;
    }
    line[used] = '\0';
    return 0;
}

int ledgerd_start(ledgerd *d, uint16_t port) {
    if (port == 0) {
        memset(d, 0, sizeof *d);
        snprintf(d->directory, sizeof d->directory, "/tmp/tokenledger-c-XXXXXX");
        if (mkdtemp(d->directory) == NULL) return -1;
        snprintf(d->data_dir, sizeof d->data_dir, "%s/ledger-data", d->directory);
    }
    char listen[32], log[320];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)port);
    snprintf(log, sizeof log, "%s/ledgerd.log", d->directory);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int err = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(out[1], 1);
        if (err >= 0) dup2(err, 2);
        /* Two shards, so the admin calls and the backup cover more than one. */
        execl(ledgerd_binary(), "ledgerd", "--data-dir", d->data_dir, "--listen", listen, "--shards", "2", (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", ledgerd_binary(), strerror(errno));
        _exit(127);
    }
    close(out[1]);
    d->pid = pid;
    d->banner_fd = out[0];
    char line[512];
    const char *prefix = "ledgerd listening on 127.0.0.1:";
    if (read_banner(out[0], line, sizeof line) != 0 || strncmp(line, prefix, strlen(prefix)) != 0) {
        fprintf(stderr, "ledgerd (%s) did not start; its log is %s\n", ledgerd_binary(), log);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(out[0]);
        d->pid = 0;
        return -1;
    }
    d->port = (uint16_t)atoi(line + strlen(prefix));
    return 0;
}

int ledgerd_stop(ledgerd *d) {
    if (d->pid <= 0) return -1;
    kill(d->pid, SIGTERM);
    int status = -1;
    for (int waited = 0; waited < 3000; waited++) {
        pid_t done = waitpid(d->pid, &status, WNOHANG);
        if (done == d->pid) break;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
        if (waited == 2999) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
            status = -1;
        }
    }
    close(d->banner_fd);
    d->pid = 0;
    if (status == -1) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int remove_entry(const char *path, const struct stat *info, int flag, struct FTW *walk) {
    (void)info;
    (void)flag;
    (void)walk;
    return remove(path);
}

void ledgerd_remove(ledgerd *d) {
    if (d->directory[0] != '\0') nftw(d->directory, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
