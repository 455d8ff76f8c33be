#include "util/zeroed_array.h"

#include <sys/mman.h>

#include <cstdlib>

namespace duet {

void* MapZeroed(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();  // out of memory, as operator new would throw
  // Advice only: without transparent huge pages the array simply uses 4 KiB pages.
  if (bytes >= (2u << 20)) (void)madvise(p, bytes, MADV_HUGEPAGE);
  return p;
}

void UnmapZeroed(void* p, size_t bytes) {
  if (p != nullptr) munmap(p, bytes);
}

}  // namespace duet
