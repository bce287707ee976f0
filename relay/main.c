/* SPDX-License-Identifier: ISC */
/*
 * veil-relay: parses the settings (flags, environment), raises the file
 * descriptor limit to fit --max-conns, starts the relay and serves until
 * SIGTERM or SIGINT, then shuts down cleanly (relay.h).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "relay.h"
#include "relay_log.h"

static veil_relay *g_relay;

static void on_signal(int sig)
{
    (void)sig;
    if (g_relay != NULL) {
        veil_relay_stop(g_relay);
    }
}

/*
 * Sets the soft descriptor limit to --max-conns plus RESERVE_FDS (up to the
 * hard limit); if it cannot, lowers max_conns to what fits. Past the limit
 * accept() fails with EMFILE on every loop turn (libwebsockets retries at
 * once, a core spent and the log flooded, bench/relay.sh scale run), while a
 * connection over max_conns gets a clean VEIL_EBUSY and close 4013. RESERVE
 * descriptors stay for the store, the loop, served files and handshakes still
 * in flight. A higher soft limit is lowered to that: libwebsockets sizes its
 * per-descriptor tables by it (relay.c, veil_relay_create).
 */
#define RESERVE_FDS 256u

static void fit_fd_limit(veil_relay_config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->max_conns + RESERVE_FDS;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur != want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            veil_log(VEIL_LOG_WARN, "fd_limit", "msg=\"could not set RLIMIT_NOFILE\"");
        }
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        uint32_t fit = rl.rlim_cur > 2 * RESERVE_FDS ? (uint32_t)(rl.rlim_cur - RESERVE_FDS) : RESERVE_FDS;
        veil_log(VEIL_LOG_WARN, "fd_limit", "limit=%llu wanted=%llu max_conns=%u", (unsigned long long)rl.rlim_cur,
                 (unsigned long long)want, fit);
        cfg->max_conns = fit;
    }
}

static int write_port_file(const char *path, int port)
{
    char tmp[VEIL_RELAY_PATH_MAX + 8];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
        return -1;
    }
    return rename(tmp, path);
}

int main(int argc, char **argv)
{
    veil_relay_config cfg;
    struct sigaction sa;
    char desc[2048];
    int rc, port;

    veil_relay_config_defaults(&cfg);
    rc = veil_relay_config_load(&cfg, argc, argv, stdout, stderr);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    veil_log_init(cfg.log_level);
    fit_fd_limit(&cfg);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    /*
     * A write past the file size limit (ulimit -f) then fails with EFBIG, as
     * one on a full disk fails with ENOSPC: the batch is answered VEIL_ESTORE
     * and the relay serves on, instead of being killed mid-write.
     */
    sigaction(SIGXFSZ, &sa, NULL);

    rc = veil_relay_create(&g_relay, &cfg);
    if (rc != 0) {
        veil_log(VEIL_LOG_ERROR, "start_failed", "code=%d", rc);
        return 1;
    }
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    port = veil_relay_port(g_relay);
    veil_relay_config_describe(&cfg, desc, sizeof desc);
    veil_log(VEIL_LOG_INFO, "listening", "url=\"http://%s:%d/\" subprotocol=veil.v1 pid=%d %s", cfg.host, port,
             (int)getpid(), desc);
    if (cfg.port_file[0] != '\0' && write_port_file(cfg.port_file, port) != 0) {
        veil_log(VEIL_LOG_ERROR, "port_file_failed", "path=\"%s\"", cfg.port_file);
        veil_relay_destroy(g_relay);
        return 1;
    }
    rc = veil_relay_run(g_relay);
    veil_relay_destroy(g_relay);
    g_relay = NULL;
    veil_log(VEIL_LOG_INFO, "stopped", "clean=%s", rc == 0 ? "yes" : "no");
    return rc == 0 ? 0 : 1;
}
