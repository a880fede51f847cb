/* rtserver: the command line. Everything else is the library (rtserver.h). */
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/log.h"
#include "rtserver.h"
#include "net/workers.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: rtserver [options] app.lua\n"
          "\n"
          "Runs a realtime app written in Lua: WebSocket, HTTP and static files on one port.\n"
          "\n"
          "options:\n"
          "  -l, --listen ADDR       address to listen on (default 127.0.0.1; repeat for more,\n"
          "                          e.g. --listen 0.0.0.0 --listen ::)\n"
          "  -p, --port N            port (default 8080; 0 picks a free one)\n"
          "      --log-level LEVEL   debug, info, warn, error or off (default info)\n"
          "      --log-json          log one JSON object per line\n"
          "      --idle-timeout SEC  close idle HTTP connections after SEC (default 60)\n"
          "      --ws-ping SEC       WebSocket keepalive ping interval (default 30, 0 = off)\n"
          "      --ws-idle SEC       close a WebSocket silent for SEC (default 75, 0 = never)\n"
          "      --max-message BYTES largest WebSocket message accepted (default 1048576)\n"
          "      --ws-deflate on|off permessage-deflate when the client offers it (default on)\n"
          "      --ws-deflate-min BYTES  messages shorter than this go uncompressed (default 256)\n"
          "      --ws-deflate-takeover BYTES  zlib memory that connections keeping their\n"
          "                          compression context between messages may hold in all\n"
          "                          (~300 KiB each; default 0: every message is compressed\n"
          "                          alone, so one frame serves all subscribers)\n"
          "      --max-body BYTES    largest HTTP request body (default 1048576)\n"
          "      --max-output BYTES  unsent bytes per connection before it is closed as a\n"
          "                          slow consumer (default 4194304)\n"
          "      --history-bytes BYTES  message bodies all topic histories (rt.history) may\n"
          "                          keep together; the oldest go first (default 67108864)\n"
          "      --watch             reload the app when its script, a module it requires or a\n"
      "                          .proto it loads changes (off by default; SIGHUP always\n"
      "                          reloads)\n"
      "      --metrics PATH      serve Prometheus metrics at this HTTP path (off by default)\n"
      "      --drain SEC         on SIGTERM/SIGINT, time in-flight work gets to finish\n"
      "                          (default 10)\n"
      "      --engine URL        share topics with other rtserver nodes through Redis\n"
      "                          pub/sub: redis://HOST[:PORT][/DB]; repeat it (or give a\n"
      "                          comma-separated list) for several Redis instances: each\n"
      "                          name goes to one of them by its hash\n"
      "      --workers N|auto    run N worker processes (auto: one per core) behind the same\n"
      "                          port(s), under one supervisor; topics are shared by all\n"
      "                          (through --engine if given, else through the supervisor)\n"
      "      --tls-cert FILE     serve TLS on the port with this PEM certificate (chain\n"
      "                          after it): https://, wss://, and gRPC over TLS (ALPN h2)\n"
      "      --tls-key FILE      the certificate's PEM private key\n"
      "      --tls-client-ca FILE  require client certificates signed by these PEM CAs\n"
      "                          (mutual TLS); handlers see the verified peer\n"
      "      --tls-handshake-timeout SEC  cut TLS handshakes that take longer (default 10)\n"
      "                          TLS 1.2 and 1.3 only. SIGHUP (and --watch, when the files\n"
      "                          change) reloads the certificate; open connections stay.\n"
      "      --lua-dir DIR       where rt.lua lives (default: next to the binary, then\n"
          "                          the install prefix)\n"
          "  -V, --version           print the version and exit\n"
          "  -h, --help              print this help and exit\n");
}

typedef struct cli {
  rt_server *srv;
  ev_signal sigint, sigterm, sighup;
  ev_timer drain;
  double drain_until, drain_timeout;
  int stopping;
  int worker;  /* one of --workers: a repeated signal is the same stop, not "now" */
  int tls;
} cli;

/* While draining: done when the last connection is gone or the drain time is up. */
static void on_drain_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  cli *c = w->data;
  int left = rt_server_connections(c->srv);
  if (left == 0 || ev_now(loop) >= c->drain_until) {
    if (left) fprintf(stderr, "rtserver: drain timeout, closing %d connection(s)\n", left);
    ev_break(loop, EVBREAK_ALL);
  }
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents) {
  cli *c = w->data;
  /* A worker hears a stop twice when it is sent to the whole group (Ctrl-C, systemd) and
   * forwarded by the supervisor too; the supervisor's own second signal is SIGKILL. */
  if (c->stopping && c->worker) return;
  if (c->stopping) {
    fprintf(stderr, "rtserver: second signal, stopping now\n");
    ev_break(loop, EVBREAK_ALL);
    return;
  }
  c->stopping = 1;
  c->drain_until = ev_now(loop) + c->drain_timeout;
  fprintf(stderr, "rtserver: signal %d, shutting down (draining up to %g s)\n", w->signum,
          c->drain_timeout);
  rt_server_stop(c->srv);
  ev_timer_start(loop, &c->drain);
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents) {
  cli *c = w->data;
  char err[512];
  rt_server_reload(c->srv, err, sizeof err);
  if (c->tls) rt_server_reload_tls(c->srv, err, sizeof err);
}

static int parse_number(const char *flag, const char *s, double min, double max, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (!*s || *end || v < min || v > max) {
    fprintf(stderr, "rtserver: %s needs a number from %g to %g, got '%s'\n", flag, min, max, s);
    return -1;
  }
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  enum { O_LOG_LEVEL = 256, O_LOG_JSON, O_IDLE, O_PING, O_WSIDLE, O_MAXMSG, O_MAXBODY, O_MAXOUT, O_LUADIR, O_WATCH, O_METRICS, O_DRAIN, O_HISTBYTES,
         O_DEFLATE, O_DEFLATE_MIN, O_DEFLATE_TAKEOVER, O_ENGINE, O_WORKERS,
         O_TLS_CERT, O_TLS_KEY, O_TLS_CA, O_TLS_HS };
  static const struct option opts[] = {
      {"listen", required_argument, 0, 'l'},     {"port", required_argument, 0, 'p'},
      {"log-level", required_argument, 0, O_LOG_LEVEL}, {"log-json", no_argument, 0, O_LOG_JSON},
      {"idle-timeout", required_argument, 0, O_IDLE}, {"ws-ping", required_argument, 0, O_PING},
      {"ws-idle", required_argument, 0, O_WSIDLE}, {"max-message", required_argument, 0, O_MAXMSG},
      {"max-body", required_argument, 0, O_MAXBODY}, {"max-output", required_argument, 0, O_MAXOUT},
      {"lua-dir", required_argument, 0, O_LUADIR}, {"version", no_argument, 0, 'V'},
      {"watch", no_argument, 0, O_WATCH},         {"metrics", required_argument, 0, O_METRICS},
      {"drain", required_argument, 0, O_DRAIN},  {"history-bytes", required_argument, 0, O_HISTBYTES},
      {"ws-deflate", required_argument, 0, O_DEFLATE},
      {"ws-deflate-min", required_argument, 0, O_DEFLATE_MIN},
      {"ws-deflate-takeover", required_argument, 0, O_DEFLATE_TAKEOVER},
      {"engine", required_argument, 0, O_ENGINE}, {"workers", required_argument, 0, O_WORKERS},
      {"tls-cert", required_argument, 0, O_TLS_CERT}, {"tls-key", required_argument, 0, O_TLS_KEY},
      {"tls-client-ca", required_argument, 0, O_TLS_CA},
      {"tls-handshake-timeout", required_argument, 0, O_TLS_HS},
      {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
  rt_config cfg;
  rt_config_init(&cfg);
  const char *listen_addrs[16];
  int nlisten = 0;
  double port = 8080, v;
  char engine[4096] = "";  /* the --engine list, on the stack: no exit path leaks it */
  int workers = 0, worker_index = -1, worker_port = 0;
  int is_worker = rt_worker_env(&worker_index, &worker_port);
  int ch;
  opterr = 0;
  while ((ch = getopt_long(argc, argv, "l:p:Vh", opts, NULL)) != -1) {
    switch (ch) {
      case 'l':
        if (nlisten < 16) listen_addrs[nlisten++] = optarg;
        break;
      case 'p':
        if (parse_number("--port", optarg, 0, 65535, &port) < 0) return 2;
        break;
      case O_LOG_LEVEL:
        if (rt_log_level_parse(optarg, &cfg.log_level) < 0) {
          fprintf(stderr, "rtserver: --log-level must be debug, info, warn, error or off, got '%s'\n", optarg);
          return 2;
        }
        break;
      case O_LOG_JSON: cfg.log_json = 1; break;
      case O_IDLE:
        if (parse_number("--idle-timeout", optarg, 0.1, 86400, &cfg.idle_timeout) < 0) return 2;
        break;
      case O_PING:
        if (parse_number("--ws-ping", optarg, 0, 86400, &cfg.ws_ping_interval) < 0) return 2;
        break;
      case O_WSIDLE:
        if (parse_number("--ws-idle", optarg, 0, 86400, &cfg.ws_idle_timeout) < 0) return 2;
        break;
      case O_MAXMSG:
        if (parse_number("--max-message", optarg, 16, 1 << 30, &v) < 0) return 2;
        cfg.max_ws_message = (size_t)v;
        break;
      case O_MAXBODY:
        if (parse_number("--max-body", optarg, 0, 1 << 30, &v) < 0) return 2;
        cfg.max_body_bytes = (size_t)v;
        break;
      case O_MAXOUT:
        if (parse_number("--max-output", optarg, 1024, 1 << 30, &v) < 0) return 2;
        cfg.max_output_bytes = (size_t)v;
        break;
      case O_LUADIR: cfg.lua_dir = optarg; break;
      case O_WATCH: cfg.watch = 1; break;
      case O_METRICS:
        if (optarg[0] != '/') {
          fprintf(stderr, "rtserver: --metrics needs a path starting with /, got '%s'\n", optarg);
          return 2;
        }
        cfg.metrics_path = optarg;
        break;
      case O_HISTBYTES:
        if (parse_number("--history-bytes", optarg, 1024, (double)(1ull << 40), &v) < 0) return 2;
        cfg.history_max_bytes = (size_t)v;
        break;
      case O_DRAIN:
        if (parse_number("--drain", optarg, 0, 3600, &cfg.drain_timeout) < 0) return 2;
        break;
      case O_DEFLATE:
        if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
          fprintf(stderr, "rtserver: --ws-deflate must be on or off, got '%s'\n", optarg);
          return 2;
        }
        cfg.ws_deflate = strcmp(optarg, "on") == 0;
        break;
      case O_DEFLATE_MIN:
        if (parse_number("--ws-deflate-min", optarg, 0, 1 << 30, &v) < 0) return 2;
        cfg.ws_deflate_min = (size_t)v;
        break;
      case O_DEFLATE_TAKEOVER:
        if (parse_number("--ws-deflate-takeover", optarg, 0, 1e12, &v) < 0) return 2;
        cfg.ws_deflate_takeover = (size_t)v;
        break;
      case O_ENGINE: {
        /* Repeated flags join into one comma-separated list. */
        size_t n = strlen(engine);
        if (n + 1 + strlen(optarg) >= sizeof engine) {
          fprintf(stderr, "rtserver: --engine: the list of Redis URLs is too long\n");
          return 2;
        }
        snprintf(engine + n, sizeof engine - n, "%s%s", n ? "," : "", optarg);
        cfg.engine = engine;
        break;
      }
      case O_WORKERS:
        if (strcmp(optarg, "auto") == 0) {
          long n = sysconf(_SC_NPROCESSORS_ONLN);
          workers = n > 0 ? (int)n : 1;
        } else if (parse_number("--workers", optarg, 1, RT_WORKERS_MAX, &v) < 0) {
          return 2;
        } else {
          workers = (int)v;
        }
        break;
      case O_TLS_CERT: cfg.tls_cert = optarg; break;
      case O_TLS_KEY: cfg.tls_key = optarg; break;
      case O_TLS_CA: cfg.tls_client_ca = optarg; break;
      case O_TLS_HS:
        if (parse_number("--tls-handshake-timeout", optarg, 0.1, 3600, &cfg.tls_handshake_timeout) < 0)
          return 2;
        break;
      case 'V': printf("rtserver %s\n", RT_VERSION); return 0;
      case 'h': usage(stdout); return 0;
      default:
        if (optopt) fprintf(stderr, "rtserver: option -%c %s (see rtserver --help)\n", optopt,
                            strchr("lp", optopt) ? "needs a value" : "is unknown");
        else fprintf(stderr, "rtserver: unknown or incomplete option '%s' (see rtserver --help)\n", argv[optind - 1]);
        return 2;
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "rtserver: %s (usage: rtserver [options] app.lua; see --help)\n",
            optind == argc ? "no app script given" : "only one app script can be given");
    return 2;
  }
  if (nlisten == 0) listen_addrs[nlisten++] = "127.0.0.1";

  if (workers > 0 && !is_worker) {
    rt_supervisor_opts so = {.workers = workers, .argv = argv, .hosts = listen_addrs,
                             .nhosts = nlisten, .port = (int)port,
                             .drain_timeout = cfg.drain_timeout, .log_json = cfg.log_json,
                             .tls = cfg.tls_cert != NULL};
    int rc = rt_supervise(&so);
    return rc;
  }
  if (is_worker) {
    port = worker_port;  /* the supervisor's choice when --port is 0 */
    cfg.reuse_port = 1;
  }

  /* Every connection is a file descriptor: take all the kernel allows us. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);

  struct ev_loop *loop = EV_DEFAULT;
  char err[1024];
  rt_server *srv = rt_server_new(loop, &cfg, err, sizeof err);
  if (!srv) {
    fprintf(stderr, "rtserver: %s\n", err);
    return 1;
  }
  if (is_worker && rt_worker_attach(srv, err, sizeof err) < 0) {
    fprintf(stderr, "rtserver: %s\n", err);
    rt_server_free(srv);
    return 1;
  }
  if (rt_server_load_app(srv, argv[optind], err, sizeof err) < 0) {
    fprintf(stderr, "rtserver: %s\n", err);
    rt_server_free(srv);
    return 1;
  }
  for (int i = 0; i < nlisten; i++)
    if (rt_server_listen(srv, listen_addrs[i], (int)port, err, sizeof err) < 0) {
      fprintf(stderr, "rtserver: %s\n", err);
      rt_server_free(srv);
      return 1;
    }

  cli c = {.srv = srv, .worker = is_worker, .tls = cfg.tls_cert != NULL};
  ev_timer_init(&c.drain, on_drain_tick, 0.02, 0.05);
  c.drain.data = &c;
  c.drain_until = ev_now(loop) + 1e9;
  c.drain_timeout = cfg.drain_timeout;
  ev_signal_init(&c.sigint, on_stop_signal, SIGINT);
  ev_signal_init(&c.sigterm, on_stop_signal, SIGTERM);
  ev_signal_init(&c.sighup, on_hup, SIGHUP);
  c.sigint.data = c.sigterm.data = c.sighup.data = &c;
  ev_signal_start(loop, &c.sigint);
  ev_signal_start(loop, &c.sigterm);
  ev_signal_start(loop, &c.sighup);
  ev_unref(loop);
  ev_unref(loop);
  ev_unref(loop);
  /* Said only now that the signals are ours: a test (or the supervisor) may send one the
   * moment it reads this line. */
  for (int i = 0; i < nlisten; i++) {
    int v6 = strchr(listen_addrs[i], ':') != NULL;
    /* A worker's line differs: the supervisor says "listening" once all are. */
    const char *scheme = cfg.tls_cert ? "https" : "http";
    if (is_worker)
      fprintf(stderr, "rtserver worker %d (pid %d) serving %s://%s%s%s:%d/\n", worker_index,
              (int)getpid(), scheme, v6 ? "[" : "", listen_addrs[i], v6 ? "]" : "",
              rt_server_port(srv));
    else
      fprintf(stderr, "rtserver listening on %s://%s%s%s:%d/\n", scheme, v6 ? "[" : "",
              listen_addrs[i], v6 ? "]" : "", rt_server_port(srv));
  }
  if (is_worker) rt_worker_ready(srv);

  ev_run(loop, 0);
  rt_server_free(srv);
  return 0;
}
