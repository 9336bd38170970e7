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
