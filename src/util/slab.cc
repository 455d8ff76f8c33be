#include "util/slab.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>

namespace duet {
namespace {
constexpr size_t kMinChunk = 1 << 20;
constexpr size_t kMaxChunk = 64 << 20;
}  // namespace

Slab::~Slab() {
  for (const Chunk& c : chunks_) ::munmap(c.base, c.size);
}

void* Slab::Allocate(size_t bytes, size_t align) {
  char* p =
      reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(next_) + align - 1) & ~(align - 1));
  if (next_ == nullptr || p + bytes > end_) {
    size_t size = chunks_.empty() ? kMinChunk : std::min(chunks_.back().size * 2, kMaxChunk);
    size = std::max(size, (bytes + align + 4095) & ~size_t{4095});
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (base == MAP_FAILED) std::abort();
    chunks_.push_back(Chunk{base, size});
    reserved_ += size;
    next_ = static_cast<char*>(base);
    end_ = next_ + size;
    p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(next_) + align - 1) & ~(align - 1));
  }
  next_ = p + bytes;
  return p;
}

}  // namespace duet
