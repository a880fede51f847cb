/* One line per event: a timestamp, a level, the message; optionally one JSON object. */
#ifndef RT_LOG_H
#define RT_LOG_H

#include "rtserver.h"

typedef struct rt_log {
  rt_log_level level;
  int json;
} rt_log;

void rt_log_write(const rt_log *log, rt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *rt_log_level_name(rt_log_level level);
int rt_log_level_parse(const char *name, rt_log_level *out);

#define rt_debug(lg, ...) do { if ((lg)->level <= RT_LOG_DEBUG) rt_log_write(lg, RT_LOG_DEBUG, __VA_ARGS__); } while (0)
#define rt_info(lg, ...)  do { if ((lg)->level <= RT_LOG_INFO)  rt_log_write(lg, RT_LOG_INFO,  __VA_ARGS__); } while (0)
#define rt_warn(lg, ...)  do { if ((lg)->level <= RT_LOG_WARN)  rt_log_write(lg, RT_LOG_WARN,  __VA_ARGS__); } while (0)
#define rt_error(lg, ...) do { if ((lg)->level <= RT_LOG_ERROR) rt_log_write(lg, RT_LOG_ERROR, __VA_ARGS__); } while (0)

#endif
