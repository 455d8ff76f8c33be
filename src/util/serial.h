// ByteWriter / ByteReader: a small, versionable binary encoding for checkpoints (varints,
// little-endian fixed-width numbers, length-prefixed strings). Readers never read past the end:
// a short or damaged buffer makes ok() false and every later read return zero values.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace duet {

class ByteWriter {
 public:
  void U64(uint64_t v) {
    char b[10];
    size_t n = 0;
    while (v >= 0x80) {
      b[n++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    b[n++] = static_cast<char>(v);
    out_.append(b, n);
  }
  // Little-endian, always 8 bytes: for hashes, which a varint would make longer.
  void Fixed64(uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
    out_.append(b, 8);
  }
  // Zig-zag, so small negative numbers stay short.
  void I64(int64_t v) { U64((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  void F64(double v) {
    const uint64_t bits = std::bit_cast<uint64_t>(v);
    char b[8];
    std::memcpy(b, &bits, 8);
    out_.append(b, 8);
  }
  void Str(std::string_view s) {
    U64(s.size());
    out_.append(s);
  }
  std::string& buffer() { return out_; }

 private:
  std::string out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  uint64_t U64() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) return Fail();
      const auto b = static_cast<uint8_t>(in_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return Fail();
  }
  int64_t I64() {
    const uint64_t u = U64();
    return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  }
  uint64_t Fixed64() {
    if (pos_ + 8 > in_.size()) return Fail();
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return v;
  }
  double F64() {
    if (pos_ + 8 > in_.size()) return static_cast<double>(Fail());
    uint64_t bits;
    std::memcpy(&bits, in_.data() + pos_, 8);
    pos_ += 8;
    return std::bit_cast<double>(bits);
  }
  std::string_view Str() {
    const uint64_t n = U64();
    if (!ok_ || n > in_.size() - pos_) {
      Fail();
      return {};
    }
    const std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  uint64_t Fail() {
    ok_ = false;
    pos_ = in_.size();
    return 0;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace duet
