// Slab: a single-threaded bump allocator for large, short-lived working sets (the batch layer's
// records). Memory comes from mmap'd chunks that are populated up front (MAP_POPULATE): faulting
// pages in one at a time costs about 4x more CPU than populating them in one call on the VMs we
// measured (1 GiB: 1.2 s vs 0.3 s), and page faults were the largest cost after JSON parsing.
// Chunks grow geometrically (1 MiB .. 64 MiB) so small inputs stay small. Everything is released
// when the Slab is destroyed; nothing is freed individually. Not thread-safe: one per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace duet {

class Slab {
 public:
  Slab() = default;
  ~Slab();
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;

  // Returns `bytes` of memory aligned to `align` (a power of two <= 4096). Aborts if the
  // system is out of memory, like operator new.
  void* Allocate(size_t bytes, size_t align);
  size_t reserved_bytes() const { return reserved_; }

 private:
  struct Chunk {
    void* base;
    size_t size;
  };
  std::vector<Chunk> chunks_;
  char* next_ = nullptr;
  char* end_ = nullptr;
  size_t reserved_ = 0;
};

// An append-only sequence with stable element addresses, stored in blocks from a Slab.
// T must be trivially copyable and destructible.
template <typename T>
class BlockList {
 public:
  // Appends a copy of v; returns its (stable) address.
  T* Append(const T& v, Slab* slab) {
    if (tail_ == nullptr || tail_->size == tail_->capacity) Grow(slab);
    T* p = &tail_->items()[tail_->size++];
    *p = v;
    ++size_;
    return p;
  }
  template <typename F>
  void ForEach(F&& f) const {
    for (Block* b = head_; b != nullptr; b = b->next) {
      T* items = b->items();
      for (uint32_t i = 0; i < b->size; ++i) f(items[i]);
    }
  }
  template <typename F>
  void ForEachMutable(F&& f) {
    for (Block* b = head_; b != nullptr; b = b->next) {
      T* items = b->items();
      for (uint32_t i = 0; i < b->size; ++i) f(items[i]);
    }
  }
  size_t size() const { return size_; }

 private:
  struct Block {
    Block* next;
    uint32_t size;
    uint32_t capacity;
    T* items() { return reinterpret_cast<T*>(reinterpret_cast<char*>(this) + kHeader); }
  };
  static constexpr size_t kHeader = (sizeof(Block) + alignof(T) - 1) / alignof(T) * alignof(T);
  static constexpr uint32_t kFirst = 32;
  static constexpr uint32_t kMax = 2048;

  void Grow(Slab* slab) {
    const uint32_t cap =
        tail_ == nullptr ? kFirst : (tail_->capacity < kMax ? tail_->capacity * 2 : kMax);
    void* mem = slab->Allocate(kHeader + sizeof(T) * cap,
                               alignof(Block) > alignof(T) ? alignof(Block) : alignof(T));
    Block* b = new (mem) Block{nullptr, 0, cap};
    if (tail_ == nullptr) {
      head_ = b;
    } else {
      tail_->next = b;
    }
    tail_ = b;
  }

  Block* head_ = nullptr;
  Block* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace duet
