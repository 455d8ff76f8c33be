#include "util/exact_sum.h"

#include <bit>
#include <cassert>
#include <cmath>

namespace duet {
namespace {
constexpr uint64_t kLow32 = 0xffffffffULL;
// Each add puts less than 2^32 into a limb; carries must run before an int64 limb can overflow.
constexpr uint32_t kMaxPending = 1U << 30;
}  // namespace

void ExactSum::AddBits(uint64_t mantissa, int shift, int64_t sign) {
  const int limb = shift / 32;
  const unsigned __int128 v = static_cast<unsigned __int128>(mantissa) << (shift % 32);
  limbs_[limb] += sign * static_cast<int64_t>(static_cast<uint64_t>(v) & kLow32);
  limbs_[limb + 1] += sign * static_cast<int64_t>(static_cast<uint64_t>(v >> 32) & kLow32);
  limbs_[limb + 2] += sign * static_cast<int64_t>(static_cast<uint64_t>(v >> 64));
  if (++pending_ >= kMaxPending) Normalize();
}

void ExactSum::Add(double x) {
  assert(std::isfinite(x));
  if (x == 0.0) return;
  const uint64_t bits = std::bit_cast<uint64_t>(x);
  const int64_t sign = (bits >> 63) ? -1 : 1;
  const int exp_bits = static_cast<int>((bits >> 52) & 0x7ff);
  const uint64_t frac = bits & ((1ULL << 52) - 1);
  // value = mantissa * 2^(shift - 1074): subnormals have an implicit exponent of 1.
  if (exp_bits == 0) {
    AddBits(frac, 0, sign);
  } else {
    AddBits(frac | (1ULL << 52), exp_bits - 1, sign);
  }
}

void ExactSum::Normalize() {
  for (int i = 0; i + 1 < kLimbs; ++i) {
    const int64_t carry = limbs_[i] >> 32;  // arithmetic shift: floor division by 2^32
    limbs_[i] -= carry * (1LL << 32);
    limbs_[i + 1] += carry;
  }
  pending_ = 0;
}

void ExactSum::Merge(const ExactSum& other) {
  ExactSum o = other;
  o.Normalize();
  Normalize();
  for (int i = 0; i < kLimbs; ++i) limbs_[i] += o.limbs_[i];
  Normalize();
}

bool ExactSum::IsZero() const {
  ExactSum c = *this;
  c.Normalize();
  for (const int64_t l : c.limbs_) {
    if (l != 0) return false;
  }
  return true;
}

void ExactSum::Save(ByteWriter* w) const {
  ExactSum c = *this;
  c.Normalize();
  uint64_t n = 0;
  for (const int64_t l : c.limbs_) n += l != 0;
  w->U64(n);
  for (int i = 0; i < kLimbs; ++i) {
    if (c.limbs_[i] == 0) continue;
    w->U64(static_cast<uint64_t>(i));
    w->I64(c.limbs_[i]);
  }
}

bool ExactSum::Load(ByteReader* r) {
  limbs_.fill(0);
  pending_ = 0;
  const uint64_t n = r->U64();
  if (n > kLimbs) return false;
  for (uint64_t k = 0; k < n; ++k) {
    const uint64_t i = r->U64();
    const int64_t v = r->I64();
    if (i >= kLimbs) return false;
    limbs_[i] = v;
  }
  return r->ok();
}

double ExactSum::Value() const {
  ExactSum c = *this;
  c.Normalize();
  bool negative = false;
  if (c.limbs_[kLimbs - 1] < 0) {
    negative = true;
    for (int64_t& l : c.limbs_) l = -l;
    c.Normalize();
  }
  int h = kLimbs - 1;
  while (h >= 0 && c.limbs_[h] == 0) --h;
  if (h < 0) return 0.0;
  const int lo = h >= 2 ? h - 2 : 0;
  unsigned __int128 top = 0;
  for (int i = h; i >= lo; --i) top = (top << 32) | static_cast<uint64_t>(c.limbs_[i]);
  bool sticky = false;
  for (int i = 0; i < lo; ++i) sticky |= c.limbs_[i] != 0;
  const int base = 32 * lo;  // top is in units of 2^(base - 1074)
  const int nb = 128 - (static_cast<uint64_t>(top >> 64) != 0
                            ? std::countl_zero(static_cast<uint64_t>(top >> 64))
                            : 64 + std::countl_zero(static_cast<uint64_t>(top)));
  double result;
  if (nb + base <= 53) {
    // Fewer than 54 significant bits above 2^-1074: exactly representable.
    result = std::ldexp(static_cast<double>(static_cast<uint64_t>(top)), base - 1074);
  } else {
    int shift = nb - 53;
    uint64_t mant = static_cast<uint64_t>(top >> shift);
    const unsigned __int128 rem = top & ((static_cast<unsigned __int128>(1) << shift) - 1);
    const unsigned __int128 half = static_cast<unsigned __int128>(1) << (shift - 1);
    if (rem > half || (rem == half && (sticky || (mant & 1)))) {
      ++mant;
      if (mant == (1ULL << 53)) {
        mant >>= 1;
        ++shift;
      }
    }
    result = std::ldexp(static_cast<double>(mant), base + shift - 1074);
  }
  return negative ? -result : result;
}

}  // namespace duet
