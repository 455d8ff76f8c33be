// FileLog: a folder of NDJSON files used as a Log — how the speed layer follows the master
// dataset while it grows.
//
// The log is the folder's input files as docs/beacon-contract.md ("Framing") defines them: the
// regular files below `root` whose names end in ".ndjson" or ".ndjson.zst" and do not start with
// '.' or '_', found recursively without following symbolic links to folders, in bytewise order
// of their path relative to `root` (the batch layer's read order). Within a file, its lines in
// order. If `root` is a single file, the log is that file whatever its name (".zst" names are
// archives).
//
// Growth: every Poll lists the folder once, so new files are picked up, and reads the lines
// appended to plain files since the last Poll. The position of each file is the byte offset and
// line count of its next unread line, so a new file that sorts before files already read is
// simply read next: positions are per file, not one cursor over the sorted list.
//
// Plain files are read with large pread calls from the stored offset (never from the start
// again). An unterminated last line of a plain file is withheld until `final`, since a writer
// may still be appending to it. ".zst" files are immutable archives: read once, to their end,
// including an unterminated last line; a damaged or truncated one is Corruption. Resuming an
// archive after Seek (or a new FileLog) decompresses it from the start and discards the bytes
// before the stored offset; a FileLog that keeps running continues its decompressor instead.
//
// Records: `source` is the path relative to root; lines longer than max_line are returned
// truncated (truncated = true, full_length = whole length), as LineReader does. Every record's
// bytes are followed by at least kLinePadding readable bytes (not necessarily zero), so they can
// be parsed in place by simdjson.
//
// Errors: a Poll that fails returns no records and leaves every position where it was.
// Corruption when a file that has been read from is removed or shrinks below its position (the
// master dataset is append-only), or an archive is damaged; IoError when the OS refuses a read.
//
// Positions() text (version 1), one line per file with offset > 0, in read order:
//   duet-file-log v1\n
//   <offset>\t<lines>\t<open|done>\t<relative path>\n
// "done" marks an archive read to its end (it is never decompressed again); plain files are
// always "open". In the path, '\' is written "\\" and a newline "\n". Seek validates all of it:
// InvalidArgument for text that does not parse, a path that is not an input file of this log or
// no longer exists; Corruption for a plain file shorter than its offset or whose offset is not
// just after a '\n' (the file was rewritten).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "log/log.h"
#include "util/result.h"

namespace duet::log {

// The default longest line kept whole: the beacon contract's limit, restated here so that the
// log does not depend on the beacon module.
inline constexpr size_t kDefaultMaxLine = 64 * 1024;

// Opens the folder (or single file) `root` as a Log, positioned at its beginning. Nothing is
// read yet. NotFound if `root` does not exist; InvalidArgument if it is neither a regular file
// nor a folder, or max_line is 0.
Result<std::unique_ptr<Log>> OpenFileLog(const std::string& root,
                                         size_t max_line = kDefaultMaxLine);

}  // namespace duet::log
