#include "handoff.h"

#include <string.h>
#include <sys/socket.h>

typedef union {
  char b[CMSG_SPACE(sizeof(int))];
  struct cmsghdr align;
} fd_control;

ssize_t rt_handoff_send(int sock, const void *data, size_t len, int fd) {
  struct iovec iov = {(void *)data, len};
  fd_control ctl;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                      .msg_controllen = sizeof ctl.b};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

ssize_t rt_handoff_recv(int sock, void *buf, size_t cap, int *fd) {
  struct iovec iov = {buf, cap};
  fd_control ctl;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                      .msg_controllen = sizeof ctl.b};
  ssize_t k = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  *fd = -1;
  struct cmsghdr *cm = k > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
  if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
    memcpy(fd, CMSG_DATA(cm), sizeof *fd);
  return k;
}
