/* Strict JSON parsing for model files and request bodies: the whole text must be one
 * JSON value, with only whitespace around it. cJSON alone stops after the first value
 * and ignores whatever follows it. */
#ifndef VBLIP_RUNTIME_JSON_H
#define VBLIP_RUNTIME_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Parses text[0..len) (NUL bytes included: one after the value is trailing data).
 * NULL with a message naming `what` ("config.json", "the request body") and the byte
 * offset of the problem: "... is not valid JSON (byte N)" or "... has more after its
 * JSON value (byte N)". */
cJSON *vb_json_parse(const char *text, size_t len, const char *what);

/* vb_json_parse, and no object may hold a key twice: "... repeats the key 'K' in one object" is
 * refused. JSON leaves repeated keys to the reader (Python keeps the last, cJSON's lookups
 * find the first, a loop over an object's members sees both), so a reader that looks keys
 * up and one that walks the members would each take a different value, or both. */
cJSON *vb_json_parse_unique(const char *text, size_t len, const char *what);

#endif
