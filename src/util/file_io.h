// Small POSIX file helpers shared by the writers of the master dataset (the generator, the
// archiver): errors as IoError values naming the operation, the path and errno's text.
#pragma once

#include <cstddef>
#include <string>

#include "util/status.h"

namespace duet {

// IoError "<what> <path>: <strerror(errno)>".
Status ErrnoError(const std::string& what, const std::string& path);

// Writes all n bytes (retrying short writes and EINTR).
Status WriteAll(int fd, const char* data, size_t n, const std::string& path);

// Writes `bytes` to `path` through a temporary file in the same folder, fsync and rename:
// readers see the old file or the new one, never a part.
Status WriteFileAtomic(const std::string& path, const std::string& bytes);

// fsyncs a folder, so that a rename into it survives a crash.
Status SyncDir(const std::string& dir);

}  // namespace duet
