/* The one oneDNN CPU engine of the process and a stream per thread, shared by
 * the bf16 and q8_0 backends. */
#include <dnnl.h>
#include <pthread.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

static dnnl_engine_t g_engine;
static pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;
static __thread dnnl_stream_t tls_stream;

static void engine_init(void) {
  vb_cpu_init(); /* AMX permission and ISA cap before oneDNN's first primitive */
  if (dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) g_engine = NULL;
}

dnnl_engine_t vb_dnnl_engine(void) {
  pthread_once(&g_engine_once, engine_init);
  return g_engine;
}

int vb_dnnl_is_reference(dnnl_primitive_desc_t pd) {
  const char *impl = NULL;
  if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl) return 1;
  return strncmp(impl, "ref", 3) == 0;
}

static void stream_destroy(void *arg) {
  (void)arg;
  dnnl_stream_destroy(tls_stream);
  tls_stream = NULL;
}

dnnl_stream_t vb_dnnl_stream(void) {
  if (!tls_stream && vb_dnnl_engine() &&
      dnnl_stream_create(&tls_stream, vb_dnnl_engine(), dnnl_stream_default_flags) == dnnl_success)
    vb_at_thread_exit(stream_destroy, NULL); /* a thread's stream ends with it */
  return tls_stream;
}

/* the calling thread's scratchpad for primitives created with a user-managed one */
static __thread void *tls_pad;
static __thread size_t tls_pad_cap;

int vb_dnnl_matmul(dnnl_primitive_t p, const dnnl_memory_desc_t *src_md, const void *src,
                   const dnnl_memory_desc_t *wei_md, const void *wei,
                   const dnnl_memory_desc_t *bias_md, const void *bias,
                   const dnnl_memory_desc_t *dst_md, void *dst) {
  dnnl_engine_t eng = vb_dnnl_engine();
  dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL, mp = NULL;
  int rc = -1;
  /* a primitive created with a user-managed scratchpad gets this thread's own */
  const_dnnl_primitive_desc_t pd = NULL;
  const dnnl_memory_desc_t *pad_md = NULL;
  size_t pad = 0;
  if (dnnl_primitive_get_primitive_desc(p, &pd) == dnnl_success &&
      (pad_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)) != NULL)
    pad = dnnl_memory_desc_get_size(pad_md);
  void *pad_buf = pad ? vb_tls_scratch_grow(&tls_pad, &tls_pad_cap, pad) : NULL;
  /* oneDNN only reads src, weights and bias; its API takes non-const handles */
  if (eng && (!pad || pad_buf) && dnnl_memory_create(&ms, src_md, eng, (void *)src) == dnnl_success &&
      dnnl_memory_create(&mw, wei_md, eng, (void *)wei) == dnnl_success &&
      (!bias || dnnl_memory_create(&mb, bias_md, eng, (void *)bias) == dnnl_success) &&
      dnnl_memory_create(&md, dst_md, eng, dst) == dnnl_success &&
      (!pad || dnnl_memory_create(&mp, pad_md, eng, pad_buf) == dnnl_success)) {
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    int n = 3;
    if (bias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
    if (pad) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mp};
    if (dnnl_primitive_execute(p, vb_dnnl_stream(), n, args) == dnnl_success &&
        dnnl_stream_wait(vb_dnnl_stream()) == dnnl_success)
      rc = 0;
  }
  if (ms) dnnl_memory_destroy(ms);
  if (mw) dnnl_memory_destroy(mw);
  if (mb) dnnl_memory_destroy(mb);
  if (md) dnnl_memory_destroy(md);
  if (mp) dnnl_memory_destroy(mp);
  return rc;
}
