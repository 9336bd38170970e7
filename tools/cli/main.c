/* vblip command-line program: a thin layer over the library (include/vblip.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define CLI_COMMAND_ADDRESS(c) &cli_cmd_##c,
static const cli_command *const k_commands[] = {CLI_COMMANDS(CLI_COMMAND_ADDRESS)};
#define N_COMMANDS (sizeof k_commands / sizeof *k_commands)

static void print_help(FILE *f) {
  fputs("vblip — VideoBLIP in C: caption, question and embed videos with VideoBLIP / BLIP-2 "
        "checkpoints\n"
        "\n"
        "usage: vblip COMMAND [options]\n"
        "\n"
        "commands:\n",
        f);
  for (size_t k = 0; k < N_COMMANDS; k++)
    fprintf(f, "  %-12s %s\n", k_commands[k]->name, k_commands[k]->summary);
  fputs("\n"
        "'vblip COMMAND --help' describes each command. Exit status: 0 on success, 1 on\n"
        "errors, 2 on usage errors.\n",
        f);
}

static const cli_command *find_command(const char *name) {
  for (size_t k = 0; k < N_COMMANDS; k++)
    if (strcmp(k_commands[k]->name, name) == 0) return k_commands[k];
  return NULL;
}

int main(int argc, char **argv) {
  vblip_hub_install(); /* --model accepts Hub repo ids */
  if (argc < 2) {
    print_help(stderr);
    return 2;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
    const cli_command *c = strcmp(name, "help") == 0 && argc > 2 ? find_command(argv[2]) : NULL;
    if (c)
      cli_print_help(c, stdout);
    else
      print_help(stdout);
    return 0;
  }
  if (strcmp(name, "--version") == 0) {
    printf("vblip %s\ncpu: %s\n", vblip_version(), vblip_cpu_summary());
    return 0;
  }
  const cli_command *c = find_command(name);
  if (!c) {
    fprintf(stderr, "vblip: unknown command '%s' (see 'vblip --help')\n", name);
    return 2;
  }
  return c->run(argc - 1, argv + 1);
}
