/* STOMP settings: the defaults a new server starts from, and which kind of destination a
 * name is under the configured prefixes. */
#include <string.h>

#include "stomp.h"

void rt_stomp_config_init(rt_stomp_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  strcpy(cfg->app_prefix, "/app");
  strcpy(cfg->user_prefix, "/user");
  strcpy(cfg->topics[0], "/topic");
  strcpy(cfg->queues[0], "/queue");
  cfg->ntopics = cfg->nqueues = 1;
  cfg->hb_send_ms = cfg->hb_recv_ms = 10000;
  rt_stomp_limits_default(&cfg->limits);
  cfg->max_destination = 512;
  cfg->max_subscriptions = 256;
  cfg->max_unacked = 1024;
  cfg->max_transactions = 16;
  cfg->max_tx_frames = 1024;
  cfg->max_tx_bytes = 4u << 20;
  cfg->max_queue_messages = 10000;
  cfg->max_queued_bytes = 64u << 20;
  cfg->connect_timeout = 10;
}

static int has_prefix(const char *d, const char *prefix) {
  size_t n = strlen(prefix);
  return n && strncmp(d, prefix, n) == 0 && d[n] == '/' && d[n + 1];
}

int rt_stomp_dest_kind(const rt_stomp_config *cfg, const char *d) {
  if (has_prefix(d, cfg->app_prefix)) return RT_STOMP_DEST_APP;
  if (has_prefix(d, cfg->user_prefix)) return RT_STOMP_DEST_USER;
  for (int i = 0; i < cfg->nqueues; i++)
    if (has_prefix(d, cfg->queues[i])) return RT_STOMP_DEST_QUEUE;
  for (int i = 0; i < cfg->ntopics; i++)
    if (has_prefix(d, cfg->topics[i])) return RT_STOMP_DEST_TOPIC;
  return RT_STOMP_DEST_NONE;
}
