/* vblip command-line program: a thin layer over the library (include/vblip.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char *k_help =
    "vblip — VideoBLIP in C: caption, question and embed videos with VideoBLIP / BLIP-2 checkpoints\n"
    "\n"
    "usage: vblip COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  caption    caption or answer a prompt about one or more videos\n"
    "  chat       chat about a video in the terminal (or one message per line from a pipe)\n"
    "  convert    write a model as one GGUF file (f32, f16, bf16 or q8_0 weights)\n"
    "  embed      write a video's frames and embeddings to a safetensors file\n"
    "  pull       download a model from the Hugging Face Hub\n"
    "  serve      serve the web chat demo, a JSON API and an OpenAI-compatible endpoint\n"
    "  tokenize   tokenize stdin with a model's tokenizer (or --decode ids)\n"
    "  train      fine-tune the Q-Former on narrated clips (VideoBLIP's Ego4D recipe)\n"
    "  ego4d-split  Ego4D narrations into train/validation clip lists for 'train'\n"
    "\n"
    "'vblip COMMAND --help' describes each command. Exit status: 0 on success, 1 on\n"
    "errors, 2 on usage errors.\n";

int main(int argc, char **argv) {
  vblip_hub_install(); /* --model accepts Hub repo ids */
  if (argc < 2) {
    fputs(k_help, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    fputs(k_help, stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("vblip %s\n", vblip_version());
    return 0;
  }
  if (strcmp(cmd, "caption") == 0) return cmd_caption(argc - 1, argv + 1);
  if (strcmp(cmd, "chat") == 0) return cmd_chat(argc - 1, argv + 1);
  if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
  if (strcmp(cmd, "convert") == 0) return cmd_convert(argc - 1, argv + 1);
  if (strcmp(cmd, "pull") == 0) return cmd_pull(argc - 1, argv + 1);
  if (strcmp(cmd, "embed") == 0) return cmd_embed(argc - 1, argv + 1);
  if (strcmp(cmd, "tokenize") == 0) return cmd_tokenize(argc - 1, argv + 1);
  if (strcmp(cmd, "train") == 0) return cmd_train(argc - 1, argv + 1);
  if (strcmp(cmd, "ego4d-split") == 0) return cmd_ego4d_split(argc - 1, argv + 1);
  fprintf(stderr, "vblip: unknown command '%s' (see 'vblip --help')\n", cmd);
  return 2;
}
