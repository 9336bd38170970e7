/* vblip_hub: downloads from the Hugging Face Hub (vblip pull). Links libcurl. */
#ifndef VBLIP_HUB_H
#define VBLIP_HUB_H

#include "vblip.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Registers the Hub client as the core's repo resolver (vblip_set_repo_resolver):
 * vblip_model_load then accepts repo ids, using the cached copy when complete (no
 * network) and pulling otherwise. Call it once at start-up. */
void vblip_hub_install(void);

/* Downloads what vblip needs from a Hugging Face Hub model repository ("owner/name"):
 * the configs, the tokenizer files and the weights in the best format there
 * (safetensors, single or sharded, else PyTorch .bin). revision: branch, tag or
 * commit (NULL: "main"). dir: where the files go (NULL: the cache,
 * $VBLIP_CACHE or ~/.cache/vblip/hub, then "<owner>--<name>/<revision>").
 * $HF_ENDPOINT overrides https://huggingface.co; $HF_TOKEN is sent as a bearer
 * token. Partial downloads ("<file>.incomplete") resume; sizes, LFS sha256 and
 * git blob ids are verified. *out_dir (if non-NULL) receives the directory (free it). */
int vblip_pull(const char *repo, const char *revision, const char *dir, int progress,
               char **out_dir);

#ifdef __cplusplus
}
#endif

#endif
