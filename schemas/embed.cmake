# Turns schemas/qapi-schema.json into a C string (qs_schema_json) at build
# time, so the daemon does not depend on the source tree at run time.
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," content "${content}")
file(WRITE ${OUT} "/* generated from schemas/qapi-schema.json */\n#include <stddef.h>\nconst char qs_schema_json[] = {${content} 0x00};\nconst size_t qs_schema_json_len = sizeof(qs_schema_json) - 1;\n")
