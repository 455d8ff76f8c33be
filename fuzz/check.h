// The fuzz targets' invariant check: a broken invariant prints what broke (with two figures when
// they help) and aborts, which libFuzzer reports as a crash, keeping the input that did it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace duet::fuzz {

[[noreturn]] inline void Fail(const char* what, uint64_t a, uint64_t b) {
  std::fprintf(stderr, "fuzz: invariant broken: %s (%llu vs %llu)\n", what,
               static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  std::abort();
}

inline void Check(bool ok, const char* what, uint64_t a = 0, uint64_t b = 0) {
  if (!ok) Fail(what, a, b);
}

}  // namespace duet::fuzz
