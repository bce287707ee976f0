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

static void raise_fd_limit(uint32_t conns)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)conns + 256;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            veil_log(VEIL_LOG_WARN, "fd_limit", "msg=\"could not raise RLIMIT_NOFILE\"");
        }
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        veil_log(VEIL_LOG_WARN, "fd_limit", "limit=%llu wanted=%llu", (unsigned long long)rl.rlim_cur,
                 (unsigned long long)want);
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
    raise_fd_limit(cfg.max_conns);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

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
