/* The program the end-to-end tests pin. It reports what it received --
 * variant marker, pid, arguments, environment (names with a 64-bit FNV-1a
 * hash of each value, never the value), open descriptors, the contents
 * of every *_FILE variable's file (hashed), whether it is dumpable -- and
 * then, by PROBE_MODE, exits, sleeps until signalled, or kills itself.
 *
 * The variant marker is patched in the compiled binary by the tests
 * ("...:A" -> "...:B") to make a second program with different bytes:
 * what a run prints proves which bytes ran. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

extern char **environ;

__attribute__((used)) static const char variant[] = "ENVSEAL-PROBE-VARIANT:A";

static uint64_t fnv(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void on_signal(int sig) {
    char msg[32];
    int n = snprintf(msg, sizeof msg, "got-signal %d\n", sig);
    write(1, msg, (size_t)n);
    _exit(3);
}

int main(int argc, char **argv) {
    printf("variant %s\n", variant + sizeof("ENVSEAL-PROBE-VARIANT:") - 1);
    printf("pid %d\n", (int)getpid());
    printf("dumpable %d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    for (int i = 1; i < argc; i++) printf("arg %s\n", argv[i]);
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        printf("env %.*s %016llx\n", (int)(eq - *e), *e,
               (unsigned long long)fnv((const unsigned char *)eq + 1, strlen(eq + 1)));
        size_t name_len = (size_t)(eq - *e);
        if (name_len > 5 && strncmp(eq - 5, "_FILE", 5) == 0) {
            unsigned char buf[65536];
            int fd = open(eq + 1, O_RDONLY);
            ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
            if (n < 0) printf("file %.*s unreadable\n", (int)name_len, *e);
            else printf("file %.*s %016llx\n", (int)name_len, *e,
                        (unsigned long long)fnv(buf, (size_t)n));
            if (fd >= 0) close(fd);
        }
    }
    DIR *d = opendir("/proc/self/fd");
    int self = d ? dirfd(d) : -1;
    struct dirent *ent;
    while (d && (ent = readdir(d))) {
        if (ent->d_name[0] == '.') continue;
        if (atoi(ent->d_name) != self) printf("fd %s\n", ent->d_name);
    }
    if (d) closedir(d);
    const char *mode = getenv("PROBE_MODE");
    if (mode && strcmp(mode, "sleep") == 0) {
        signal(SIGTERM, on_signal);
        signal(SIGUSR1, on_signal);
        printf("ready\n");
        fflush(stdout);
        for (;;) pause();
    }
    fflush(stdout);
    if (mode && strcmp(mode, "raise") == 0) raise(SIGTERM);
    const char *code = getenv("PROBE_EXIT");
    return code ? atoi(code) : 0;
}
