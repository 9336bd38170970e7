/* How much memory this process may still take: what the kernel reports
 * available, capped by the cgroup's limit (containers), or what
 * $VBLIP_MEMORY_AVAILABLE says (bytes, or with a K/M/G/T suffix). */
#ifndef VBLIP_RUNTIME_MEMORY_H
#define VBLIP_RUNTIME_MEMORY_H

#include <stdint.h>

/* *bytes and a short name of where it came from ("MemAvailable", "cgroup
 * memory.max", "VBLIP_MEMORY_AVAILABLE"); -1 (error set) when nothing tells
 * (no /proc, say) or the variable is malformed. */
int vb_memory_available(uint64_t *bytes, const char **source);
/* Parses "123", "512M", "1.5G" (K, M, G, T: powers of 1024) into bytes; -1 if bad. */
int vb_parse_bytes(const char *s, uint64_t *bytes);

#endif
