/* For fuzz targets whose decoder reads a file by path: the input written to a temporary file. */
#ifndef FR_TESTS_FUZZ_FILE_H
#define FR_TESTS_FUZZ_FILE_H

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes data to a new file made from path (a mkstemp template, rewritten to the file's name).
 * 0, or -1 (nothing left behind). The caller unlinks path. */
static inline int fuzz_write_file(char *path, const uint8_t *data, size_t size)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    int bad = write(fd, data, size) != (ssize_t)size;
    close(fd);
    if (bad)
        unlink(path);
    return bad ? -1 : 0;
}

#endif
