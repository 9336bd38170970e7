#include "vision/vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/profile.h"
#include "kernels/tile_gemm.h"
#include "runtime/common.h"

#define I64(x) ((int64_t)(x))

/* VBLIP_PROFILE=1: a section's time less what its callees charged goes to
 * class c (profile.h). */
typedef struct {
  int on;
  double t0, c0;
} prof_mark;

static prof_mark prof_begin(int on) {
  prof_mark m = {on, 0, 0};
  if (on) m.t0 = vb_now_ms(), m.c0 = vb_prof_total();
  return m;
}

static void prof_end(prof_mark m, vb_prof_class c) {
  if (m.on) vb_prof_add(c, vb_now_ms() - m.t0 - (vb_prof_total() - m.c0));
}

/* The same for a product: the tile products charge their core time to c. */
static prof_mark prof_begin_product(int on, vb_prof_class c) {
  if (on) vb_prof_set_product(c);
  return prof_begin(on);
}

int vb_vit_init(vb_vit *v, vb_weights *w, const vb_vision_config *cfg) {
  memset(v, 0, sizeof *v);
  pthread_mutex_init(&v->ws_mu, NULL);
  v->cfg = *cfg;
  int D = cfg->hidden_size, P = cfg->patch_size, F = cfg->intermediate_size;
  if (strcmp(cfg->hidden_act, "gelu") != 0)
    return vb_error("vision hidden_act %s is not supported (gelu)", cfg->hidden_act);
  v->grid = cfg->image_size / P;
  v->seq = v->grid * v->grid + 1;
  const vb_tensor_info *pw = vb_weights_find(w, "vision_model.embeddings.patch_embedding.weight", 4,
                                             I64(D), I64(3), I64(P), I64(P));
  if (!pw) return -1;
  v->patch.out = D;
  v->patch.in = 3 * P * P;
  v->patch.dtype = pw->dtype;
  v->patch.w = pw->data;
  v->patch.bias = vb_weights_f32(w, "vision_model.embeddings.patch_embedding.bias", 1, I64(D));
  if (!v->patch.bias || vb_linear_prepare(&v->patch)) return -1;
  v->class_emb =
      vb_weights_f32(w, "vision_model.embeddings.class_embedding", 3, I64(1), I64(1), I64(D));
  v->pos_emb = vb_weights_f32(w, "vision_model.embeddings.position_embedding", 3, I64(1),
                              I64(v->seq), I64(D));
  v->post_w = vb_weights_f32(w, "vision_model.post_layernorm.weight", 1, I64(D));
  v->post_b = vb_weights_f32(w, "vision_model.post_layernorm.bias", 1, I64(D));
  if (!v->class_emb || !v->pos_emb || !v->post_w || !v->post_b) return -1;
  v->layers = vb_calloc((size_t)cfg->num_hidden_layers, sizeof *v->layers);
  if (!v->layers) return -1;
  for (int i = 0; i < cfg->num_hidden_layers; i++) {
    vb_vit_layer *L = &v->layers[i];
    char p[160], n[200];
    snprintf(p, sizeof p, "vision_model.encoder.layers.%d", i);
#define LN(dst, sub, part)                                                                         \
  snprintf(n, sizeof n, "%s.%s.%s", p, sub, part);                                                 \
  if (!(dst = vb_weights_f32(w, n, 1, I64(D)))) return -1;
    LN(L->ln1_w, "layer_norm1", "weight");
    LN(L->ln1_b, "layer_norm1", "bias");
    LN(L->ln2_w, "layer_norm2", "weight");
    LN(L->ln2_b, "layer_norm2", "bias");
#undef LN
    snprintf(n, sizeof n, "%s.self_attn.qkv", p);
    if (vb_weights_linear_vision(w, n, 3 * D, D, cfg->qkv_bias, VB_I8_QKV, &L->qkv)) return -1;
    snprintf(n, sizeof n, "%s.self_attn.projection", p);
    if (vb_weights_linear_vision(w, n, D, D, 1, VB_I8_PROJ, &L->proj)) return -1;
    snprintf(n, sizeof n, "%s.mlp.fc1", p);
    if (vb_weights_linear_vision(w, n, F, D, 1, VB_I8_FC1, &L->fc1)) return -1;
    snprintf(n, sizeof n, "%s.mlp.fc2", p);
    if (vb_weights_linear_vision(w, n, D, F, 1, VB_I8_FC2, &L->fc2)) return -1;
  }
  return 0;
}

void vb_vit_free(vb_vit *v) {
  if (v->layers) {
    for (int i = 0; i < v->cfg.num_hidden_layers; i++) {
      vb_linear_release(&v->layers[i].qkv);
      vb_linear_release(&v->layers[i].proj);
      vb_linear_release(&v->layers[i].fc1);
      vb_linear_release(&v->layers[i].fc2);
    }
  }
  vb_linear_release(&v->patch);
  free(v->layers);
  vb_free_aligned(v->ws);
  pthread_mutex_destroy(&v->ws_mu);
  memset(v, 0, sizeof *v);
}

/* Patch rows for one frame: [grid*grid, 3*P*P] in the conv weight's (c, ky, kx) order. */
static void im2col(const float *pix, int frames, int t, int H, int W, int P, int grid,
                   float *cols) {
  size_t plane = (size_t)H * W, chan_stride = (size_t)frames * plane;
  for (int gy = 0; gy < grid; gy++)
    for (int gx = 0; gx < grid; gx++) {
      float *row = cols + ((size_t)gy * grid + gx) * 3 * P * P;
      for (int c = 0; c < 3; c++) {
        const float *src = pix + c * chan_stride + (size_t)t * plane;
        for (int ky = 0; ky < P; ky++)
          memcpy(row + (c * P + ky) * P, src + (size_t)(gy * P + ky) * W + gx * P,
                 P * sizeof(float));
      }
    }
}

int vb_vit_forward(vb_vit *v, const float *pixel_values, int frames, float *out) {
  const vb_vision_config *c = &v->cfg;
  int D = c->hidden_size, F = c->intermediate_size, P = c->patch_size, S = v->seq;
  int heads = c->num_attention_heads, hd = D / heads;
  int H = c->image_size, W = c->image_size, npatch = v->grid * v->grid;
  size_t M = (size_t)frames * S;
  /* one workspace: cols | pe | x | qkv | att | mlp | mlp_amax */
  size_t sizes[7] = {
      (size_t)npatch * 3 * P * P, (size_t)npatch * D, M * D, M * 3 * D, M * D, M * F, M};
  float *bufs[7];
  pthread_mutex_lock(&v->ws_mu);
  int rc = -1, prof = vb_prof_on();
  double t_start = 0;
  if (prof) {
    vb_prof_reset();
    t_start = vb_now_ms();
  }
  prof_mark pm = prof_begin(prof);
  if (vb_scratch_carve(&v->ws, &v->ws_cap, sizes, 7, bufs) != 0) goto done;
  float *cols = bufs[0], *pe = bufs[1], *x = bufs[2], *qkv = bufs[3], *att = bufs[4],
        *mlp = bufs[5], *mlp_amax = bufs[6];
  /* embeddings: [CLS; patches] + positions, frame by frame */
  for (int t = 0; t < frames; t++) {
    im2col(pixel_values, frames, t, H, W, P, v->grid, cols);
    if (vb_linear_forward(&v->patch, cols, npatch, pe) != 0) goto done;
    float *xt = out + (size_t)t * S * D;
    memcpy(xt, v->class_emb, D * sizeof(float));
    memcpy(xt + D, pe, (size_t)npatch * D * sizeof(float));
    vb_add(xt, v->pos_emb, (size_t)S * D);
  }
  prof_end(pm, VB_PROF_PATCH);
  float scale = 1.0f / sqrtf((float)hd);
  for (int l = 0; l < c->num_hidden_layers; l++) {
    const vb_vit_layer *L = &v->layers[l];
    /* on tiles the layer norms run inside the products' activation rounding
     * (row by row, the normed row still in L1): same values, no f32 pass */
    int tiles = L->qkv.tile && L->proj.tile && L->fc1.tile && L->fc2.tile;
    /* on AMX the tile products write q (times the attention scale), k and v
     * in bf16, which attention's tiles take as they are: half the bytes of
     * the largest activation but one, and the same values as rounding there */
    int qkv_bf16 = tiles && vb_tile_kind_usable(VB_TILE_BF16_AMX) && S <= 1024;
    uint16_t *qkv_b = (uint16_t *)qkv;
    /* qkv's bf16 output goes past the caches (streaming stores): attention
     * reads it head by head later, and the caches keep the layer's other data
     * (Sapphire Rapids: int8 vision 1-4% faster, bf16 within the noise) */
    if (tiles) {
      vb_tile_io io = {.x = out,
                       .ln_w = L->ln1_w,
                       .ln_b = L->ln1_b,
                       .ln_eps = c->layer_norm_eps,
                       .y = qkv_bf16 ? NULL : qkv,
                       .y_bf16 = qkv_bf16 ? qkv_b : NULL,
                       .scale_cols = qkv_bf16 ? D : 0,
                       .col_scale = scale,
                       .stream_out = qkv_bf16,
                       .ldy = 3 * D};
      pm = prof_begin_product(prof, VB_PROF_QKV);
      if (vb_linear_tile_io(&L->qkv, (int)M, &io) != 0) goto done;
      prof_end(pm, VB_PROF_QKV);
    } else {
      pm = prof_begin(prof);
      vb_layernorm(out, x, (int)M, D, L->ln1_w, L->ln1_b, c->layer_norm_eps);
      prof_end(pm, VB_PROF_LAYERNORM);
      pm = prof_begin_product(prof, VB_PROF_QKV);
      if (vb_linear_forward(&L->qkv, x, (int)M, qkv) != 0) goto done;
      prof_end(pm, VB_PROF_QKV);
    }
    pm = prof_begin(prof);
    /* f32 compute keeps exact f32 attention; bf16 / int8 use the tiles where there are some */
    if (qkv_bf16) {
      /* ... and write bf16, which proj reads in place (D % 32 == 0; it
       * rounded its input to bf16 anyway, with the same rounding) */
      if (vb_attention_batch_amx_bf16_out(frames, qkv_b, 3 * D, qkv_b + D, qkv_b + 2 * D, 3 * D,
                                          (uint16_t *)att, D, S, S, heads, hd) != 0)
        goto done;
    } else if ((L->qkv.compute == VB_COMPUTE_F32 ||
                vb_attention_batch_amx(frames, qkv, 3 * D, qkv + D, qkv + 2 * D, 3 * D, att, D, S,
                                       S, heads, hd, scale) != 0) &&
               vb_attention_batch(frames, qkv, 3 * D, qkv + D, qkv + 2 * D, 3 * D, att, D, S, S,
                                  heads, hd, scale) != 0)
      goto done;
    prof_end(pm, VB_PROF_ATTENTION);
    if (tiles) {
      /* on tiles: residual adds in the output stage, fc1's GELU output kept
       * bf16 for fc2 (half the bytes of the largest activation, no rounding
       * pass); the arithmetic is the same as below */
      uint16_t *mlp_b = (uint16_t *)mlp;
      int ld_mlp = (int)(vb_tile_row_stride((size_t)F * 2) / 2); /* <= 2F: fits the f32 buffer */
      vb_tile_io proj = {.x = qkv_bf16 ? NULL : att,
                         .x_bf16 = qkv_bf16 ? (const uint16_t *)att : NULL,
                         .ldx = qkv_bf16 ? D : 0,
                         .y = out,
                         .ldy = D,
                         .residual = 1};
      vb_tile_io fc1 = {.x = out,
                        .ln_w = L->ln2_w,
                        .ln_b = L->ln2_b,
                        .ln_eps = c->layer_norm_eps,
                        .y_bf16 = mlp_b,
                        .ldy = ld_mlp,
                        .act = VB_TILE_ACT_GELU_ERF};
      vb_tile_io fc2 = {.x_bf16 = mlp_b, .ldx = ld_mlp, .y = out, .ldy = D, .residual = 1};
      if (vb_linear_tile_is_i8(&L->fc2)) {
        /* fc1's output stage finds each row's max |GELU| for fc2's int8 rounding */
        memset(mlp_amax, 0, M * sizeof(float));
        fc1.y_amax = mlp_amax;
        fc2.x_amax = mlp_amax;
      }
      pm = prof_begin_product(prof, VB_PROF_PROJ);
      if (vb_linear_tile_io(&L->proj, (int)M, &proj) != 0) goto done;
      prof_end(pm, VB_PROF_PROJ);
      pm = prof_begin_product(prof, VB_PROF_FC1);
      if (vb_linear_tile_io(&L->fc1, (int)M, &fc1) != 0) goto done;
      prof_end(pm, VB_PROF_FC1);
      pm = prof_begin_product(prof, VB_PROF_FC2);
      if (vb_linear_tile_io(&L->fc2, (int)M, &fc2) != 0) goto done;
      prof_end(pm, VB_PROF_FC2);
      continue;
    }
    pm = prof_begin_product(prof, VB_PROF_PROJ);
    if (vb_linear_forward(&L->proj, att, (int)M, x) != 0) goto done;
    prof_end(pm, VB_PROF_PROJ);
    pm = prof_begin(prof);
    vb_add(out, x, M * D);
    prof_end(pm, VB_PROF_OTHER);
    pm = prof_begin(prof);
    vb_layernorm(out, x, (int)M, D, L->ln2_w, L->ln2_b, c->layer_norm_eps);
    prof_end(pm, VB_PROF_LAYERNORM);
    pm = prof_begin_product(prof, VB_PROF_FC1);
    if (vb_linear_forward_gelu(&L->fc1, x, (int)M, mlp) != 0) goto done;
    prof_end(pm, VB_PROF_FC1);
    pm = prof_begin_product(prof, VB_PROF_FC2);
    if (vb_linear_forward(&L->fc2, mlp, (int)M, x) != 0) goto done;
    prof_end(pm, VB_PROF_FC2);
    pm = prof_begin(prof);
    vb_add(out, x, M * D);
    prof_end(pm, VB_PROF_OTHER);
  }
  pm = prof_begin(prof);
  vb_layernorm(out, out, (int)M, D, v->post_w, v->post_b, c->layer_norm_eps);
  prof_end(pm, VB_PROF_LAYERNORM);
  rc = 0;
  if (prof) {
    double total = vb_now_ms() - t_start;
    vb_prof_add(VB_PROF_OTHER, total - vb_prof_total());
    char title[160];
    const char *kind = c->num_hidden_layers > 0 ? vb_linear_tile_kind(&v->layers[0].fc1) : NULL;
    snprintf(title, sizeof title, "vision encoder, %d frames, fc1 on %s", frames,
             kind ? kind : "oneDNN / sgemm");
    vb_prof_print(title, total);
  }
done:
  pthread_mutex_unlock(&v->ws_mu);
  return rc;
}
