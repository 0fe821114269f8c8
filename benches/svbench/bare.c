/*
 * bare - the same work as a supervisor in the kit's N-services measurement, done by the
 * simplest C program, as a reference to read every supervisor's figures against: measured on
 * the same machine, in the same run-all.sh call.
 *
 *   bare [-n] N PROGRAM [ARG...]
 *   bare -q
 *
 * Starts N copies of PROGRAM one after the other with posix_spawn, each in a session of its
 * own (as uprise and Upstart start every job), with stdin on /dev/null and stdout and stderr
 * on a pipe of its own whose read end bare keeps open (as uprise's default `console log`
 * does; -n puts them on /dev/null instead, as `console none` does). Then it waits for
 * SIGTERM, sends SIGTERM to every service's process group, reaps them all and exits.
 *
 * It supervises nothing: it keeps no state, reads no output, writes no log, answers no client,
 * restarts nothing and stops in no order. Its stop time is close to what the kernel alone
 * takes to end these services: the services' own exits and their reaping are most of it.
 * It is not a lower bound for starting: posix_spawn waits for each exec in turn, where a
 * supervisor may overlap them.
 *
 * `bare -q` exits at once: a small program starting and ending, for the status columns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void die(const char *what, int error) {
    fprintf(stderr, "bare: %s: %s\n", what, strerror(error));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "-q")) return 0;
    int pipes = 1, arg = 1;
    if (argc > 1 && !strcmp(argv[1], "-n")) {
        pipes = 0;
        arg = 2;
    }
    if (argc < arg + 2 || atoi(argv[arg]) < 1) {
        fprintf(stderr, "usage: bare [-n] N PROGRAM [ARG...] | bare -q\n");
        return 2;
    }
    int n = atoi(argv[arg]);
    char **service = argv + arg + 1;

    /* one pipe per service: the read ends stay open here */
    struct rlimit files;
    if (!getrlimit(RLIMIT_NOFILE, &files)) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    /* SIGTERM waits for sigwaitinfo; services start with nothing blocked */
    sigset_t term, none;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &term, NULL);

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setsigmask(&attr, &none);

    pid_t *pids = calloc(n, sizeof *pids);
    if (!pids) die("calloc", errno);
    for (int i = 0; i < n; i++) {
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        int out[2] = {-1, -1};
        if (pipes) {
            if (pipe2(out, O_CLOEXEC)) die("pipe2", errno);
            posix_spawn_file_actions_adddup2(&actions, out[1], 1);
            posix_spawn_file_actions_adddup2(&actions, out[1], 2);
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
            posix_spawn_file_actions_adddup2(&actions, 1, 2);
        }
        int error = posix_spawn(&pids[i], service[0], &actions, &attr, service, environ);
        if (error) die(service[0], error);
        posix_spawn_file_actions_destroy(&actions);
        if (pipes) close(out[1]);
    }

    int signal;
    do {
        signal = sigwaitinfo(&term, NULL);
    } while (signal != SIGTERM);

    for (int i = 0; i < n; i++) kill(-pids[i], SIGTERM);
    for (int left = n; left > 0;) {
        if (waitpid(-1, NULL, 0) > 0)
            left--;
        else if (errno == ECHILD)
            break;
    }
    return 0;
}
