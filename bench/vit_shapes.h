/* The vision encoder's four products per layer (ViT-g, M = frames x 257 rows)
 * and a square reference, shared by onednn-matmul and tile-matmul so their
 * rows line up. */
#ifndef VBLIP_BENCH_VIT_SHAPES_H
#define VBLIP_BENCH_VIT_SHAPES_H

typedef struct {
  const char *name;
  int M, N, K;
} vit_shape;

#define VIT_SHAPES 5 /* the first four are one layer's products */

static inline void vit_shapes(int frames, vit_shape out[VIT_SHAPES]) {
  int M = frames * 257;
  const vit_shape s[VIT_SHAPES] = {{"qkv", M, 4224, 1408},
                                   {"proj", M, 1408, 1408},
                                   {"fc1", M, 6144, 1408},
                                   {"fc2", M, 1408, 6144},
                                   {"4096^3", 4096, 4096, 4096}};
  for (int i = 0; i < VIT_SHAPES; i++)
    out[i] = s[i];
}

#endif
