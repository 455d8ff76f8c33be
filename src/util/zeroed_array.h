// ZeroedArray<T>: a fixed-size array of T that starts all-zero, for large open-addressing tables
// (the speed layer's ids and visitors). Memory comes straight from mmap, so it is zero without
// being written, and arrays of 2 MiB or more ask for transparent huge pages (MADV_HUGEPAGE):
// lookups in a table of hundreds of MiB miss the cache anyway, and huge pages spare them a TLB
// miss and page walk as well. T must be trivially copyable, and all-zero bytes must be a valid T.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace duet {

// mmap'd zero memory (huge-page advised when large); aborts when out of memory, like new.
void* MapZeroed(size_t bytes);
void UnmapZeroed(void* p, size_t bytes);

template <typename T>
class ZeroedArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  ZeroedArray() = default;
  explicit ZeroedArray(size_t n)
      : data_(n == 0 ? nullptr : static_cast<T*>(MapZeroed(n * sizeof(T)))), size_(n) {}
  ~ZeroedArray() { UnmapZeroed(data_, size_ * sizeof(T)); }
  ZeroedArray(ZeroedArray&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  ZeroedArray& operator=(ZeroedArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  ZeroedArray(const ZeroedArray&) = delete;
  ZeroedArray& operator=(const ZeroedArray&) = delete;

  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace duet
