/* run-as: become a job's user, group and groups, then exec the job (issue 18, executor.as_user).
 *
 *   run-as UID GID GROUPS -- ARGV...      GROUPS: comma-separated gids, or "-" for none
 *
 * Why a helper of our own: jobsd spawns from a vfork'd child (CPython's _posixsubprocess), which may
 * not call setuid/setgid/setgroups, so the switch needs one exec between. util-linux's setpriv does
 * the same work but costs ~1.2 ms more per spawn than this program (dynamic linking, capability
 * and /proc reads): RunJob -> exec with a user went from 1.28x to ~1.05x (bench/run_as.py).
 *
 * Same rules as `setpriv --reuid --regid --groups`: the supplementary groups first, then the real,
 * effective and saved gid, then the real, effective and saved uid, so nothing can be regained; every
 * failure prints a line on stderr (the attempt's log) and exits as a shell does for a command it
 * cannot run: 127 (not found, or the switch failed), 126 (found but not executable). It is not
 * setuid and gives nothing to a caller that is not root already. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GROUPS 65536

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "jobsd run-as: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 127;
}

static int parse_id(const char *text, unsigned long *out) {
    char *end;
    if (!isdigit((unsigned char)*text)) return -1;  /* strtoul would skip spaces and take a sign */
    errno = 0;
    *out = strtoul(text, &end, 10);
    return (errno || *end || *out >= UINT_MAX) ? -1 : 0;  /* (uid_t)-1 means "unchanged": refused */
}

int main(int argc, char **argv) {
    unsigned long uid, gid, one;
    if (argc < 6 || strcmp(argv[4], "--") != 0)
        return fail("usage: run-as UID GID GROUPS -- PROGRAM [ARG...]", NULL);
    if (parse_id(argv[1], &uid) || parse_id(argv[2], &gid))
        return fail("bad uid or gid", argv[parse_id(argv[1], &uid) ? 1 : 2]);
    static gid_t groups[MAX_GROUPS];
    size_t count = 0;
    if (strcmp(argv[3], "-") != 0) {
        char *list = strdup(argv[3]), *item;  /* strsep cuts its string: keep argv[3] for the message */
        if (!list) return fail("out of memory", NULL);
        while ((item = strsep(&list, ",")) != NULL) {
            if (count == MAX_GROUPS || parse_id(item, &one)) return fail("bad group list", argv[3]);
            groups[count++] = (gid_t)one;
        }
    }
    if (setgroups(count, groups) != 0) return fail("setgroups", strerror(errno));
    if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0) return fail("setresgid", strerror(errno));
    if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) return fail("setresuid", strerror(errno));
    execvp(argv[5], argv + 5);
    int error = errno;
    fprintf(stderr, "jobsd run-as: cannot execute %s: %s\n", argv[5], strerror(error));
    return error == ENOENT ? 127 : 126;
}
