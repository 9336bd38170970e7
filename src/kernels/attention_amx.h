/* Internal: the operand packing of attention on AMX tiles (attention_amx.c),
 * exposed for tests. Both write the layout of a packed tile weight
 * (vb_tile_weight with is_i8 = 0: [Np/16][Kp/2][16][2], element (n, k) of
 * the product's B = W^T at group n / 16, k-pair k / 2, slot n % 16, half
 * k % 2), zero wherever the source has no element, from bf16 rows ld
 * elements apart. AVX-512 (AVX512BW), so only where AMX is usable. */
#ifndef VBLIP_KERNELS_ATTENTION_AMX_H
#define VBLIP_KERNELS_ATTENTION_AMX_H

#include <stddef.h>
#include <stdint.h>

/* Keys for the scores Q K^T: element (n, d) = k[n * ld + d] for n < nk,
 * d < head_dim, as a weight of Np (% 32 == 0, >= nk) columns and Dp
 * (% 32 == 0, >= head_dim) k. Reads only those elements. */
void vb_att_pack_keys(const uint16_t *k, size_t ld, int nk, int head_dim, int Np, int Dp,
                      uint16_t *dst);
/* Values for P V: element (d, n) = v[n * ld + d], a weight of Dp columns
 * (the head's dims) and Np k (the keys). Reads only n < nk, d < head_dim. */
void vb_att_pack_values(const uint16_t *v, size_t ld, int nk, int head_dim, int Np, int Dp,
                        uint16_t *dst);

#endif
