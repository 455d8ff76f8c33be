// Deterministic randomness for the generator: a xoshiro256** stream seeded through splitmix64,
// plus the few distributions the traffic model needs. Nothing here uses <random> distributions or
// libm transcendental functions, whose results differ between standard libraries; the target is
// built with -ffp-contract=off so every double operation is a single IEEE-754 rounding, and the
// same seed therefore gives byte-identical output with any compiler and library.
#pragma once

#include <cmath>
#include <cstdint>

namespace duet::gen::internal {

// The splitmix64 finalizer: a bijection on 64-bit integers (so distinct inputs never collide)
// that mixes every input bit into every output bit.
constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

constexpr uint64_t SplitMix64(uint64_t* state) {
  *state += 0x9e3779b97f4a7c15ULL;
  return Mix64(*state);
}

// Natural logarithm for finite x > 0 to about 1e-13 relative, using only + - * / and exact
// power-of-two scaling (ample for drawing from distributions).
inline double Ln(double x) {
  constexpr double kLn2 = 0.693147180559945309417232121458;
  constexpr double kSqrtHalf = 0.707106781186547524400844362105;
  int e = 0;
  double m = std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1): exact
  if (m < kSqrtHalf) {
    m *= 2.0;
    --e;
  }
  // ln(m) = 2 atanh(s) with s = (m-1)/(m+1), |s| <= 0.1716, s^2 <= 0.0295.
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double poly = 1.0 / 15.0;
  poly = poly * s2 + 1.0 / 13.0;
  poly = poly * s2 + 1.0 / 11.0;
  poly = poly * s2 + 1.0 / 9.0;
  poly = poly * s2 + 1.0 / 7.0;
  poly = poly * s2 + 1.0 / 5.0;
  poly = poly * s2 + 1.0 / 3.0;
  poly = poly * s2 + 1.0;
  return 2.0 * s * poly + e * kLn2;
}

// e^x for |x| < 700 to about 1e-13 relative, using only + - * / and exact power-of-two scaling.
inline double Exp(double x) {
  constexpr double kInvLn2 = 1.44269504088896340735992468100;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // high bits of ln 2: k * kLn2Hi is exact
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  const double kf = x * kInvLn2;
  const int k = static_cast<int>(kf < 0 ? kf - 0.5 : kf + 0.5);
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;  // |r| <= 0.347
  // Taylor polynomial of degree 11 (Horner); the remainder is below 1e-13.
  constexpr double kInvFactorial[] = {1.0,         1.0,          1.0 / 2,       1.0 / 6,
                                      1.0 / 24,    1.0 / 120,    1.0 / 720,     1.0 / 5040,
                                      1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800};
  double poly = kInvFactorial[11];
  for (int n = 10; n >= 0; --n) poly = poly * r + kInvFactorial[n];
  return std::ldexp(poly, k);
}

// xoshiro256** by Blackman and Vigna: fast, 256 bits of state, passes BigCrush.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& w : s_) w = SplitMix64(&seed);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1), 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1].
  double UniformPositive() { return static_cast<double>((Next() >> 11) + 1) * 0x1.0p-53; }
  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias below 2^-40 for our n).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  // Uniform integer in [lo, hi], lo <= hi.
  int64_t Range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo) + 1));
  }
  bool Chance(double p) { return Uniform() < p; }

  // Standard normal by Marsaglia's polar method (needs only Ln and the correctly rounded sqrt).
  // Each round yields two independent normals; the second is kept for the next call.
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    while (true) {
      const double u = 2.0 * Uniform() - 1.0;
      const double v = 2.0 * Uniform() - 1.0;
      const double s = u * u + v * v;
      if (s > 0.0 && s < 1.0) {
        const double f = std::sqrt(-2.0 * Ln(s) / s);
        spare_ = v * f;
        has_spare_ = true;
        return u * f;
      }
    }
  }
  // exp(N(ln median, sigma^2)).
  double LogNormal(double median, double sigma) { return median * Exp(sigma * Normal()); }
  // Geometric on {0, 1, 2, ...} with the given mean.
  uint64_t Geometric(double mean) {
    if (mean <= 0.0) return 0;
    const double q = mean / (mean + 1.0);  // probability of one more
    return static_cast<uint64_t>(Ln(UniformPositive()) / Ln(q));
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// Picks an index with probability proportional to integer weights.
template <typename Weights>
size_t PickWeighted(Rng* rng, const Weights& weights) {
  uint64_t total = 0;
  for (const auto w : weights) total += w;
  uint64_t r = rng->Below(total);
  size_t i = 0;
  for (const auto w : weights) {
    if (r < w) return i;
    r -= w;
    ++i;
  }
  return i - 1;
}

}  // namespace duet::gen::internal
