/* The Hugging Face cache that transformers and huggingface_hub fill: a model already
 * downloaded with Python is used as it is, without the network. */
#ifndef VBLIP_HUB_HF_CACHE_H
#define VBLIP_HUB_HF_CACHE_H

#include <stddef.h>

/* The cache's root: $HF_HUB_CACHE, else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. New string or NULL. */
char *vb_hf_cache_root(void);
/* The snapshot directory of repo at rev (a branch or tag named by refs/REV, or a commit)
 * when it holds everything vblip reads: config.json, preprocessor_config.json, a tokenizer
 * and the weights (every shard an index names). New string, or NULL. */
char *vb_hf_cache_snapshot(const char *repo, const char *rev);
/* HF_HUB_OFFLINE set to 1/true/yes/on: no network access at all. */
int vb_hf_offline(void);

#endif
