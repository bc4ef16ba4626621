/* The program the end-to-end tests pin. It reports what it received --
 * variant marker, pid, arguments, environment (names with a 64-bit FNV-1a
 * hash of each value, never the value), open descriptors, the contents
 * of every *_FILE variable's file (hashed), whether it is dumpable -- and
 * then, by PROBE_MODE, exits, sleeps until signalled, or kills itself.
 *
 * The variant marker is patched in the compiled binary by the tests
 * ("...:A" -> "...:B") to make a second program with different bytes:
 * what a run prints proves which bytes ran. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
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

/* "ok" or "errno N" for a call's result. */
static void check(const char *name, long r) {
    if (r < 0) printf("check %s errno %d\n", name, errno);
    else printf("check %s ok\n", name);
}

static void list_dir(const char *name, const char *path) {
    DIR *d = opendir(path);
    if (!d) { printf("check %s errno %d\n", name, errno); return; }
    printf("check %s [", name);
    struct dirent *e;
    int first = 1;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        printf("%s%s", first ? "" : " ", e->d_name);
        first = 0;
    }
    printf("]\n");
    closedir(d);
}

static void sleep_ms(long ms) {
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

/* The checks of a sandboxed run (PROBE_MODE=sandbox). */
static void sandbox_checks(void) {
    const char *port = getenv("PROBE_TCP");
    if (port) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port)) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        check("connect", s < 0 ? -1 : connect(s, (struct sockaddr *)&a, sizeof a));
        if (s >= 0) close(s);
    }
    /* The name of the files it writes: each test gives its own, so tests
       running at once never share a host path. */
    const char *mark = getenv("PROBE_MARK");
    const char *outside = getenv("PROBE_OUTSIDE");
    if (outside && mark) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", outside, mark);
        check("write_outside", open(path, O_CREAT | O_WRONLY, 0600));
    }
    if (mark) {
        char tmp_mark[4096];
        snprintf(tmp_mark, sizeof tmp_mark, "/tmp/%s", mark);
        check("write_cwd", open(mark, O_CREAT | O_WRONLY, 0600));
        check("write_tmp", open(tmp_mark, O_CREAT | O_WRONLY, 0600));
    }
    const char *host_pid = getenv("PROBE_HOST_PID");
    if (host_pid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%s", host_pid);
        check("proc_host_pid", access(path, F_OK));
    }
    list_dir("tmp", "/tmp");
    const char *home = getenv("HOME");
    if (home) list_dir("home", home);
    const char *secret = getenv("CERT_FILE");
    if (secret) {
        struct stat st;
        struct statfs fs;
        if (stat(secret, &st) == 0) printf("check secret_mode %o\n", st.st_mode & 0777);
        if (statfs(secret, &fs) == 0)
            printf("check secret_fs %s %s\n", fs.f_type == 0x01021994 ? "tmpfs" : "other",
                   (fs.f_flags & ST_RDONLY) ? "ro" : "rw");
        if (statfs(secret, &fs) == 0)
            printf("check secret_noexec %s\n", (fs.f_flags & ST_NOEXEC) ? "yes" : "no");
        check("secret_write", open(secret, O_WRONLY));
    }
    const char *other = getenv("PROBE_EXEC");
    if (getenv("PROBE_GATE")) {
        /* Tell the test the launch is done, then wait for it to act. */
        close(open("probe-started", O_CREAT | O_WRONLY, 0600));
        for (int i = 0; i < 1000 && access("probe-go", F_OK) != 0; i++) sleep_ms(10);
    }
    pid_t child = fork();
    if (child == 0) {
        char *argv[] = { "sh", "-c", "exit 0", NULL };
        execv(other ? other : "/bin/sh", argv);
        _exit(errno);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) printf("check exec_sh errno %d\n", WEXITSTATUS(status));
    else printf("check exec_sh ok\n");
    /* ptrace a child of its own (never anything else). */
    pid_t victim = fork();
    if (victim == 0) { pause(); _exit(0); }
    long traced = ptrace(PTRACE_ATTACH, victim, 0, 0);
    check("ptrace", traced);
    kill(victim, SIGKILL);
    waitpid(victim, NULL, 0);
    check("unshare", unshare(CLONE_NEWUSER));
    check("mount", mount("tmpfs", "/tmp", "tmpfs", 0, NULL));
    check("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    check("memfd_plain", syscall(SYS_memfd_create, "x", 0));
    check("memfd_noexec", syscall(SYS_memfd_create, "x", 0x0008 /* MFD_NOEXEC_SEAL */));
    unsigned long long clone_args[11] = { 0 };
    clone_args[4] = SIGCHLD; /* exit_signal */
    long c3 = syscall(SYS_clone3, clone_args, sizeof clone_args);
    if (c3 == 0) _exit(0);
    check("clone3", c3);
    long cu = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (cu == 0) _exit(0);
    check("clone_newuser", cu);
    char c = 'x';
    check("tiocsti", ioctl(0, TIOCSTI, &c));
    char host[64] = "";
    gethostname(host, sizeof host);
    printf("check hostname %s\n", host);
}

/* An orphan: a child that exits at once, leaving a grandchild that exits
 * a little later. In a PID namespace the orphan is re-parented to PID 1,
 * which must reap it. (PROBE_MODE=orphan) */
static void orphan_check(void) {
    int fds[2];
    pipe(fds);
    pid_t child = fork();
    if (child == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0) { sleep_ms(100); _exit(0); }
        write(fds[1], &grandchild, sizeof grandchild);
        _exit(0);
    }
    pid_t grandchild = 0;
    read(fds[0], &grandchild, sizeof grandchild);
    waitpid(child, NULL, 0);
    sleep_ms(500);
    /* kill(pid, 0) succeeds on a zombie; ESRCH once it was reaped. */
    printf("check orphan_reaped %s\n", kill(grandchild, 0) < 0 && errno == ESRCH ? "yes" : "no");
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
    if (mode && strcmp(mode, "sandbox") == 0) sandbox_checks();
    if (mode && strcmp(mode, "orphan") == 0) orphan_check();
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
