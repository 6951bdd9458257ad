/*
 * A per-source rate limit run by the kernel on a TAP (TUNSETFILTEREBPF): an eBPF socket filter
 * that the kernel runs on every frame it hands to the TAP, before the frame is queued for us. A
 * source (an IPv4 or IPv6 source address with its protocol byte) past its rate is dropped there,
 * in the sender's context, so a flood costs this process neither a read() nor a JS turn, and the
 * TAP's queue is left to everyone else's frames. Frames that are neither IPv4 nor IPv6, or too
 * short to name a source, pass (the stack counts and drops what is malformed).
 *
 * The state is a least-recently-used hash map (at most max_sources entries: a source not seen for
 * a while is forgotten, so the map is bounded whatever the sources) of token buckets, and an array
 * map of one counter (frames dropped). Buckets count in packet-nanoseconds: `rate` per second
 * refills `rate` units per ns, a frame costs 1e9, the bucket holds `burst` frames. Updates race
 * between CPUs without locks: a bucket may let a frame too many through, never block one wrongly.
 *
 * The program is assembled here (a few dozen instructions, no toolchain needed) and checked by the
 * kernel's verifier at load; its log comes back in the error.
 */
#define _GNU_SOURCE
#include "srcfilter.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_tun.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NS_PER_FRAME 1000000000LL

static long sys_bpf(int cmd, union bpf_attr *attr) { return syscall(__NR_bpf, cmd, attr, sizeof *attr); }

/* ---- a tiny assembler: instructions, labels and forward jumps ---------------------------------- */

#define MAX_INSNS 128
#define MAX_FIXUPS 32
enum label { L_ACCEPT, L_V4, L_V6, L_LOOKUP, L_NEW, L_DROP, L_DROP_COUNTED, L_NOCLAMP, L_NOCAP, L_FORWARD, L_COUNT };

typedef struct {
  struct bpf_insn insn[MAX_INSNS];
  int n;
  int label_at[L_COUNT];
  struct {
    int at;
    enum label to;
  } fix[MAX_FIXUPS];
  int nfix;
  int overflow;
} prog_t;

static void emit(prog_t *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  if (p->n >= MAX_INSNS) {
    p->overflow = 1;
    return;
  }
  struct bpf_insn *i = &p->insn[p->n++];
  memset(i, 0, sizeof *i);
  i->code = code;
  i->dst_reg = dst;
  i->src_reg = src;
  i->off = off;
  i->imm = imm;
}

static void label(prog_t *p, enum label l) { p->label_at[l] = p->n; }

/* Note that the instruction about to be emitted jumps to `to` (resolved once the labels are known). */
static int fixup(prog_t *p, enum label to) {
  if (p->nfix >= MAX_FIXUPS) {
    p->overflow = 1;
    return -1;
  }
  p->fix[p->nfix].at = p->n;
  p->fix[p->nfix++].to = to;
  return 0;
}

/* A conditional (or, with op BPF_JA, plain) jump to a label placed later. */
static void jump(prog_t *p, uint8_t op, uint8_t dst, int32_t imm, enum label to) {
  if (fixup(p, to) == 0) emit(p, BPF_JMP | op | BPF_K, dst, 0, 0, imm);
}

static void jump_reg(prog_t *p, uint8_t op, uint8_t dst, uint8_t src, enum label to) {
  if (fixup(p, to) == 0) emit(p, BPF_JMP | op | BPF_X, dst, src, 0, 0);
}

static void ld_imm64(prog_t *p, uint8_t dst, uint8_t src, uint64_t v) {
  emit(p, BPF_LD | BPF_DW | BPF_IMM, dst, src, 0, (int32_t)(uint32_t)v);
  emit(p, 0, 0, 0, 0, (int32_t)(uint32_t)(v >> 32));
}

static int resolve(prog_t *p) {
  if (p->overflow) return -1;
  for (int k = 0; k < p->nfix; k++) p->insn[p->fix[k].at].off = (int16_t)(p->label_at[p->fix[k].to] - p->fix[k].at - 1);
  return 0;
}

/* Registers: r6 the skb (LD_ABS wants it there), r7 the bucket, r8 the time. The key is 20 bytes at
 * fp-24 (four address words and family<<8|protocol), a new bucket 16 bytes at fp-48, the counter's
 * key at fp-28. */
static void assemble(prog_t *p, int buckets_fd, int counter_fd, uint32_t rate, uint64_t cap, uint64_t max_elapsed) {
  const int16_t KEY = -24, VAL = -48, CKEY = -28;
  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0);
  emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_0, BPF_REG_6, offsetof(struct __sk_buff, len), 0);
  jump(p, BPF_JLT, BPF_REG_0, 34, L_ACCEPT); /* Ethernet + IPv4 header */
  emit(p, BPF_LD | BPF_H | BPF_ABS, 0, 0, 0, 12);
  jump(p, BPF_JEQ, BPF_REG_0, 0x0800, L_V4);
  jump(p, BPF_JEQ, BPF_REG_0, 0x86dd, L_V6);
  jump(p, BPF_JA, 0, 0, L_ACCEPT);

  label(p, L_V4);
  emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, 0, 26); /* source address */
  emit(p, BPF_STX | BPF_W | BPF_MEM, BPF_REG_10, BPF_REG_0, KEY, 0);
  emit(p, BPF_ST | BPF_W | BPF_MEM, BPF_REG_10, 0, KEY + 4, 0);
  emit(p, BPF_ST | BPF_W | BPF_MEM, BPF_REG_10, 0, KEY + 8, 0);
  emit(p, BPF_ST | BPF_W | BPF_MEM, BPF_REG_10, 0, KEY + 12, 0);
  emit(p, BPF_LD | BPF_B | BPF_ABS, 0, 0, 0, 23); /* protocol */
  emit(p, BPF_ALU64 | BPF_OR | BPF_K, BPF_REG_0, 0, 0, 4 << 8);
  emit(p, BPF_STX | BPF_W | BPF_MEM, BPF_REG_10, BPF_REG_0, KEY + 16, 0);
  jump(p, BPF_JA, 0, 0, L_LOOKUP);

  label(p, L_V6);
  emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_0, BPF_REG_6, offsetof(struct __sk_buff, len), 0);
  jump(p, BPF_JLT, BPF_REG_0, 54, L_ACCEPT); /* Ethernet + IPv6 header */
  for (int w = 0; w < 4; w++) {
    emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, 0, 22 + 4 * w); /* source address, word by word */
    emit(p, BPF_STX | BPF_W | BPF_MEM, BPF_REG_10, BPF_REG_0, KEY + 4 * w, 0);
  }
  emit(p, BPF_LD | BPF_B | BPF_ABS, 0, 0, 0, 20); /* next header */
  emit(p, BPF_ALU64 | BPF_OR | BPF_K, BPF_REG_0, 0, 0, 6 << 8);
  emit(p, BPF_STX | BPF_W | BPF_MEM, BPF_REG_10, BPF_REG_0, KEY + 16, 0);

  label(p, L_LOOKUP);
  ld_imm64(p, BPF_REG_1, BPF_PSEUDO_MAP_FD, (uint64_t)buckets_fd);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0);
  emit(p, BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, KEY);
  emit(p, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem);
  jump(p, BPF_JEQ, BPF_REG_0, 0, L_NEW);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_7, BPF_REG_0, 0, 0);
  emit(p, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ktime_get_ns);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_8, BPF_REG_0, 0, 0);
  /* elapsed = now - last, at most the time that fills an empty bucket */
  emit(p, BPF_LDX | BPF_DW | BPF_MEM, BPF_REG_1, BPF_REG_7, 8, 0);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_8, 0, 0);
  emit(p, BPF_ALU64 | BPF_SUB | BPF_X, BPF_REG_2, BPF_REG_1, 0, 0);
  jump(p, BPF_JSGE, BPF_REG_2, 0, L_FORWARD); /* another CPU stamped a later time: no refill */
  emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_2, 0, 0, 0);
  label(p, L_FORWARD);
  ld_imm64(p, BPF_REG_3, 0, max_elapsed);
  jump_reg(p, BPF_JLE, BPF_REG_2, BPF_REG_3, L_NOCLAMP);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_3, 0, 0);
  label(p, L_NOCLAMP);
  /* tokens = min(cap, tokens + elapsed * rate) */
  emit(p, BPF_ALU64 | BPF_MUL | BPF_K, BPF_REG_2, 0, 0, (int32_t)rate);
  emit(p, BPF_LDX | BPF_DW | BPF_MEM, BPF_REG_3, BPF_REG_7, 0, 0);
  emit(p, BPF_ALU64 | BPF_ADD | BPF_X, BPF_REG_3, BPF_REG_2, 0, 0);
  ld_imm64(p, BPF_REG_4, 0, cap);
  jump_reg(p, BPF_JLE, BPF_REG_3, BPF_REG_4, L_NOCAP);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_4, 0, 0);
  label(p, L_NOCAP);
  emit(p, BPF_STX | BPF_DW | BPF_MEM, BPF_REG_7, BPF_REG_8, 8, 0);
  ld_imm64(p, BPF_REG_4, 0, NS_PER_FRAME);
  jump_reg(p, BPF_JLT, BPF_REG_3, BPF_REG_4, L_DROP);
  emit(p, BPF_ALU64 | BPF_SUB | BPF_X, BPF_REG_3, BPF_REG_4, 0, 0);
  emit(p, BPF_STX | BPF_DW | BPF_MEM, BPF_REG_7, BPF_REG_3, 0, 0);
  jump(p, BPF_JA, 0, 0, L_ACCEPT);

  label(p, L_DROP);
  emit(p, BPF_STX | BPF_DW | BPF_MEM, BPF_REG_7, BPF_REG_3, 0, 0);
  emit(p, BPF_ST | BPF_W | BPF_MEM, BPF_REG_10, 0, CKEY, 0);
  ld_imm64(p, BPF_REG_1, BPF_PSEUDO_MAP_FD, (uint64_t)counter_fd);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0);
  emit(p, BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, CKEY);
  emit(p, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem);
  jump(p, BPF_JEQ, BPF_REG_0, 0, L_DROP_COUNTED);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 1);
  emit(p, BPF_STX | BPF_DW | BPF_ATOMIC, BPF_REG_0, BPF_REG_1, 0, BPF_ADD);
  label(p, L_DROP_COUNTED);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
  emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

  /* First frame of a source: a full bucket less this frame. */
  label(p, L_NEW);
  emit(p, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ktime_get_ns);
  emit(p, BPF_STX | BPF_DW | BPF_MEM, BPF_REG_10, BPF_REG_0, VAL + 8, 0);
  ld_imm64(p, BPF_REG_1, 0, cap - NS_PER_FRAME);
  emit(p, BPF_STX | BPF_DW | BPF_MEM, BPF_REG_10, BPF_REG_1, VAL, 0);
  ld_imm64(p, BPF_REG_1, BPF_PSEUDO_MAP_FD, (uint64_t)buckets_fd);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0);
  emit(p, BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, KEY);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_10, 0, 0);
  emit(p, BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_3, 0, 0, VAL);
  emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_4, 0, 0, BPF_ANY);
  emit(p, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_update_elem);

  /* Keep the whole frame. */
  label(p, L_ACCEPT);
  emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_0, BPF_REG_6, offsetof(struct __sk_buff, len), 0);
  emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

static int map_create(uint32_t type, uint32_t key, uint32_t value, uint32_t entries) {
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_type = type;
  a.key_size = key;
  a.value_size = value;
  a.max_entries = entries;
  return (int)sys_bpf(BPF_MAP_CREATE, &a);
}

int srcfilter_attach(int tapfd, uint32_t rate, uint32_t burst, uint32_t max_sources, int *counter_fd, char *err, size_t errlen) {
  *counter_fd = -1;
  if (rate < 1 || rate > SRCFILTER_MAX_RATE || burst < 1 || burst > SRCFILTER_MAX_BURST || max_sources < 1) {
    snprintf(err, errlen, "source filter: rate 1..%d, burst 1..%d, sources at least 1", SRCFILTER_MAX_RATE, SRCFILTER_MAX_BURST);
    errno = EINVAL;
    return -1;
  }
  int buckets = map_create(BPF_MAP_TYPE_LRU_HASH, 20, 16, max_sources);
  if (buckets < 0) {
    snprintf(err, errlen, "source filter: cannot create its map (bpf BPF_MAP_CREATE)");
    return -1;
  }
  int counter = map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1);
  if (counter < 0) {
    int e = errno;
    snprintf(err, errlen, "source filter: cannot create its counter (bpf BPF_MAP_CREATE)");
    close(buckets);
    errno = e;
    return -1;
  }
  uint64_t cap = (uint64_t)burst * NS_PER_FRAME;
  prog_t p;
  memset(&p, 0, sizeof p);
  assemble(&p, buckets, counter, rate, cap, cap / rate);
  int progfd = -1;
  if (resolve(&p) == 0) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    a.insns = (uint64_t)(uintptr_t)p.insn;
    a.insn_cnt = (uint32_t)p.n;
    a.license = (uint64_t)(uintptr_t) "Dual MIT/GPL";
    progfd = (int)sys_bpf(BPF_PROG_LOAD, &a);
    if (progfd < 0) {
      /* Refused: load it again with the verifier's log, whose last lines say why. */
      int e = errno;
      char log[16384];
      log[0] = 0;
      a.log_buf = (uint64_t)(uintptr_t)log;
      a.log_size = sizeof log;
      a.log_level = 1;
      int again = (int)sys_bpf(BPF_PROG_LOAD, &a);
      if (again >= 0) close(again); /* refused once, taken now: still report the first refusal */
      size_t len = strlen(log);
      const char *tail = len > 600 ? log + len - 600 : log;
      snprintf(err, errlen, "source filter: the kernel refused the program (bpf BPF_PROG_LOAD%s%s)", tail[0] ? "; verifier: " : "", tail);
      errno = e;
    }
  } else {
    snprintf(err, errlen, "source filter: program too long");
    errno = E2BIG;
  }
  int e = errno;
  /* The program holds its maps; the buckets' fd is not needed any more. */
  close(buckets);
  if (progfd < 0) {
    close(counter);
    errno = e;
    return -1;
  }
  if (ioctl(tapfd, TUNSETFILTEREBPF, &progfd) < 0) {
    e = errno;
    snprintf(err, errlen, "source filter: cannot attach it to the TAP (TUNSETFILTEREBPF)");
    close(progfd);
    close(counter);
    errno = e;
    return -1;
  }
  /* The TAP holds the program now. */
  close(progfd);
  *counter_fd = counter;
  return 0;
}

int srcfilter_detach(int tapfd) {
  int none = -1;
  return ioctl(tapfd, TUNSETFILTEREBPF, &none);
}

int srcfilter_drops(int counter_fd, uint64_t *out) {
  union bpf_attr a;
  uint32_t key = 0;
  memset(&a, 0, sizeof a);
  a.map_fd = (uint32_t)counter_fd;
  a.key = (uint64_t)(uintptr_t)&key;
  a.value = (uint64_t)(uintptr_t)out;
  return (int)sys_bpf(BPF_MAP_LOOKUP_ELEM, &a);
}
