// ExactSum: an order-independent, exact sum of finite doubles, rounded once (to nearest, ties to
// even) when read. Adding the same values in any order, split across any number of partial sums
// that are later merged, gives bit-identical results — which is what lets the batch layer (two
// threads), the speed layer (any micro-batch split) and the Python reference (math.fsum) agree on
// revenue to the last bit. Internally a fixed-point "superaccumulator" over the whole double range.
#pragma once

#include <array>
#include <cstdint>

#include "util/serial.h"

namespace duet {

class ExactSum {
 public:
  // Adds x (finite; negative values subtract). Never fails; O(1).
  void Add(double x);
  // Adds everything `other` holds. O(limbs).
  void Merge(const ExactSum& other);
  // The exact sum rounded to the nearest double. O(limbs).
  double Value() const;
  bool IsZero() const;
  // Exact, compact encoding (only non-zero limbs); Load returns false on a malformed input.
  void Save(ByteWriter* w) const;
  bool Load(ByteReader* r);

 private:
  static constexpr int kLimbs = 72;  // 32 value bits each, covering 2^-1074 .. 2^1234.
  void Normalize();
  void AddBits(uint64_t mantissa, int shift, int64_t sign);
  std::array<int64_t, kLimbs> limbs_{};
  uint32_t pending_ = 0;  // adds since the last carry propagation
};

}  // namespace duet
