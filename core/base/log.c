#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

const char *rt_log_level_name(rt_log_level level) {
  return level <= RT_LOG_OFF ? level_names[level] : "?";
}

int rt_log_level_parse(const char *name, rt_log_level *out) {
  for (int i = 0; i <= RT_LOG_OFF; i++)
    if (strcasecmp(name, level_names[i]) == 0) {
      *out = (rt_log_level)i;
      return 0;
    }
  return -1;
}

static void json_escape(FILE *f, const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch == '\n') fputs("\\n", f);
    else if (ch == '\t') fputs("\\t", f);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
}

void rt_log_write(const rt_log *log, rt_log_level level, const char *fmt, ...) {
  if (level < log->level) return;
  char msg[4096], stamp[32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);

  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(stamp + n, sizeof stamp - n, ".%03dZ", (int)(tv.tv_usec / 1000));

  if (log->json) {
    fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp, rt_log_level_name(level));
    json_escape(stderr, msg);
    fputs("\"}\n", stderr);
  } else {
    fprintf(stderr, "%s %-5s %s\n", stamp, rt_log_level_name(level), msg);
  }
}
