/* The one oneDNN CPU engine of the process and a stream per thread, shared by
 * the bf16 and q8_0 backends. */
#include <dnnl.h>
#include <pthread.h>

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

dnnl_stream_t vb_dnnl_stream(void) {
  if (!tls_stream && vb_dnnl_engine())
    dnnl_stream_create(&tls_stream, vb_dnnl_engine(), dnnl_stream_default_flags);
  return tls_stream;
}

int vb_dnnl_matmul(dnnl_primitive_t p, const dnnl_memory_desc_t *src_md, const void *src,
                   const dnnl_memory_desc_t *wei_md, const void *wei,
                   const dnnl_memory_desc_t *bias_md, const void *bias,
                   const dnnl_memory_desc_t *dst_md, void *dst) {
  dnnl_engine_t eng = vb_dnnl_engine();
  dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL;
  int rc = -1;
  /* oneDNN only reads src, weights and bias; its API takes non-const handles */
  if (eng && dnnl_memory_create(&ms, src_md, eng, (void *)src) == dnnl_success &&
      dnnl_memory_create(&mw, wei_md, eng, (void *)wei) == dnnl_success &&
      (!bias || dnnl_memory_create(&mb, bias_md, eng, (void *)bias) == dnnl_success) &&
      dnnl_memory_create(&md, dst_md, eng, dst) == dnnl_success) {
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}, {DNNL_ARG_BIAS, mb}};
    if (dnnl_primitive_execute(p, vb_dnnl_stream(), bias ? 4 : 3, args) == dnnl_success &&
        dnnl_stream_wait(vb_dnnl_stream()) == dnnl_success)
      rc = 0;
  }
  if (ms) dnnl_memory_destroy(ms);
  if (mw) dnnl_memory_destroy(mw);
  if (mb) dnnl_memory_destroy(mb);
  if (md) dnnl_memory_destroy(md);
  return rc;
}
