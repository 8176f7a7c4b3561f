# Turns a JSON schema part into a C string at build time, so that the
# library does not depend on the source tree at run time.
#   cmake -DIN=part.json -DOUT=part.c -DNAME=symbol -P embed.cmake
# defines `const char NAME[]` (NUL-terminated) and `const size_t NAME_len`.
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," content "${content}")
get_filename_component(src ${IN} NAME)
file(WRITE ${OUT} "/* generated from ${src} */\n#include <stddef.h>\nconst char ${NAME}[] = {${content} 0x00};\nconst size_t ${NAME}_len = sizeof(${NAME}) - 1;\n")
