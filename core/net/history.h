/* Topic history: the last messages of topics whose names match a configured pattern, so
 * that a subscriber who was away can get what it missed, or learn that it cannot.
 *
 * Each such topic has a record: an epoch (random, made when the record is) and an offset
 * that grows by one per publish. The record keeps up to `size` messages for up to `ttl`
 * seconds; all histories together keep at most max_bytes of bodies (oldest dropped first).
 * A record with no messages left is dropped after its ttl; if the topic is published to
 * again, the new record has a new epoch, so a client holding the old one is told its
 * position is gone instead of being handed a wrong continuation.
 *
 * Bodies are the publish's own reference-counted chunk: keeping a message costs one
 * reference, no copy of the body. */
#ifndef RT_HISTORY_H
#define RT_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/header.h"

typedef struct rt_server rt_server;
typedef struct rt_history rt_history;
typedef struct rt_msg rt_msg;

#define RT_HISTORY_EPOCH_LEN 16          /* hex digits */
#define RT_HISTORY_MAX_POLICIES 64
#define RT_HISTORY_MAX_SIZE 100000       /* messages per topic */
#define RT_HISTORY_DEFAULT_MAX_BYTES (64u * 1024 * 1024)

rt_history *rt_history_new(rt_server *srv);
void rt_history_free(rt_history *h);
/* Topics matching pattern (broker pattern syntax) keep size messages for ttl seconds.
 * A pattern set again gets the new numbers (for new messages). Returns -1 on bad
 * arguments or too many policies. */
int rt_history_policy(rt_history *h, const char *pattern, size_t size, double ttl);
/* Drops every policy (a reload sets them again); kept messages stay until they expire. */
void rt_history_clear_policies(rt_history *h);
void rt_history_set_max_bytes(rt_history *h, size_t max_bytes);
/* Does any policy cover name? */
int rt_history_covers(rt_history *h, const char *name);
/* The size and ttl of the policy covering name; 0 when none does. */
int rt_history_limits(rt_history *h, const char *name, size_t *size, double *ttl);

/* Called by the broker before delivering m: when m's destination has history, the message
 * is kept and m->offset and m->epoch are set (m->epoch stays valid through the publish).
 * Returns 0, or -1 out of memory (m goes out without an offset). */
int rt_history_keep(rt_history *h, rt_msg *m);

/* For a history that lives elsewhere (Redis: stream.h), this one is a cache of its recent
 * part: keeps m at the epoch and offset the engine gave it. A message of another epoch, or
 * one that does not follow the latest kept, starts the record over, so what is kept is
 * always one contiguous run; one kept already is ignored. Sets m->offset and m->epoch.
 * Returns 0, or -1 out of memory. */
int rt_history_keep_at(rt_history *h, rt_msg *m, const char *epoch, uint64_t offset);
/* The same for a message just older than the oldest kept (a read from the engine reached
 * further back): kept when it extends the run and the size allows. */
int rt_history_keep_before(rt_history *h, rt_msg *m, const char *epoch, uint64_t offset);
/* Drops every record: messages were lost on the way here, so every topic starts a new
 * epoch (a client from before is told it was not recovered). */
void rt_history_drop_all(rt_history *h);
/* Drops name's record. */
void rt_history_forget(rt_history *h, const char *name);
/* The offset of the oldest message kept for name; 0 when none is. */
uint64_t rt_history_oldest(rt_history *h, const char *name);

/* Where a topic stands: its epoch and latest offset (0 and "" when it has no record). */
uint64_t rt_history_top(rt_history *h, const char *name, const char **epoch);
/* The same, but a topic that a policy covers gets its record (and epoch) now if it has
 * none: for a client that will count messages from here before the first is published. */
uint64_t rt_history_position(rt_history *h, const char *name, const char **epoch);

/* Visits the kept messages of name with offset > since, oldest first, at most limit (0 =
 * all), each as an rt_msg (destination, body, binary, content type, headers, offset,
 * epoch) valid during the call; the visitor returns nonzero to stop. Returns:
 *   1  complete: epoch matches (or is NULL) and nothing after since is missing;
 *   0  not: another epoch (nothing is visited), or the history no longer reaches back to
 *      since + 1 (then what is kept is visited only when partial is set). */
int rt_history_read(rt_history *h, const char *name, const char *epoch, uint64_t since,
                    size_t limit, int partial, int (*visit)(void *ud, rt_msg *m), void *ud);

size_t rt_history_bytes(const rt_history *h);

#endif
