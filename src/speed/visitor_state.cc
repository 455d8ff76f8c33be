#include "speed/visitor_state.h"

#include <malloc.h>

#include <cstring>

namespace duet::speed {

void EncodeVisitorState(const core::SessionSpan& done, std::span<const OpenEvent> open,
                        int64_t keep_ids_from, ByteWriter* w) {
  w->U64(done.sessions.size());
  int64_t prev = 0;
  for (const core::Session& s : done.sessions) {
    w->I64(s.start_ts - prev);
    w->I64(s.end_ts - s.start_ts);
    w->U64(s.events);
    w->U64(s.pageviews);
    w->U64(s.conversions);
    w->U64(s.hours);
    w->U64(s.attribution);
    prev = s.end_ts;
  }
  for (const double v : done.values) w->F64(v);
  for (const int64_t h : done.hours) w->I64(h);
  w->U64(open.size());
  for (const OpenEvent& e : open) {
    w->I64(e.ts - prev);
    prev = e.ts;
    w->U64(e.tags);
    // The type in the low 2 bits, the context above: a state written before contexts existed
    // decodes with context 0.
    w->U64(static_cast<uint64_t>(e.type) | uint64_t{e.context} << 2);
    if (e.type == beacon::BeaconType::kConversion) w->F64(e.value);
    w->Str(e.ts >= keep_ids_from ? e.id : std::string_view());
  }
}

bool DecodeVisitorState(std::string_view bytes, size_t tag_sets, core::SessionList* done,
                        std::vector<OpenEvent>* open) {
  done->Clear();
  open->clear();
  ByteReader r(bytes);
  const uint64_t ns = r.U64();
  if (!r.ok() || ns > bytes.size()) return false;
  int64_t prev = 0;
  uint64_t values = 0;
  uint64_t hours = 0;
  for (uint64_t i = 0; i < ns; ++i) {
    core::Session s;
    s.start_ts = prev + r.I64();
    s.end_ts = s.start_ts + r.I64();
    s.events = static_cast<uint32_t>(r.U64());
    s.pageviews = static_cast<uint32_t>(r.U64());
    s.conversions = static_cast<uint32_t>(r.U64());
    s.hours = static_cast<uint32_t>(r.U64());
    const uint64_t attribution = r.U64();
    if (!r.ok() || attribution >= tag_sets || s.events == 0) return false;
    s.attribution = static_cast<core::TagSetId>(attribution);
    values += s.conversions;
    hours += s.hours;
    done->sessions.push_back(s);
    prev = s.end_ts;
  }
  if (values > bytes.size() || hours > bytes.size()) return false;
  for (uint64_t i = 0; i < values; ++i) done->values.push_back(r.F64());
  for (uint64_t i = 0; i < hours; ++i) done->hours.push_back(r.I64());
  const uint64_t no = r.U64();
  if (!r.ok() || no > bytes.size()) return false;
  for (uint64_t i = 0; i < no; ++i) {
    OpenEvent e;
    e.ts = prev + r.I64();
    prev = e.ts;
    const uint64_t tags = r.U64();
    const uint64_t packed = r.U64();
    const uint64_t type = packed & 3;
    if (!r.ok() || tags >= tag_sets ||
        type > static_cast<uint64_t>(beacon::BeaconType::kConversion) || packed >> 2 > 0xff)
      return false;
    e.context = static_cast<uint8_t>(packed >> 2);
    e.tags = static_cast<core::TagSetId>(tags);
    e.type = static_cast<beacon::BeaconType>(type);
    if (e.type == beacon::BeaconType::kConversion) e.value = r.F64();
    e.id = r.Str();
    if (e.id.size() > beacon::kMaxIdBytes) return false;
    open->push_back(e);
  }
  return r.ok() && r.at_end();
}

VisitorTable::Entry* VisitorTable::Find(const Hash128& key) {
  const Hash128 k = Key(key);
  const size_t mask = slots_.size() - 1;
  for (size_t i = Home(k);; i = (i + 1) & mask) {
    Entry& e = slots_[i];
    if (Empty(e)) return nullptr;
    if (e.key == k) return &e;
  }
}

VisitorTable::Entry* VisitorTable::Insert(const Hash128& key, bool* inserted) {
  if ((size_ + 1) * 10 > slots_.size() * 7) Grow();  // at most 70 % full
  const Hash128 k = Key(key);
  const size_t mask = slots_.size() - 1;
  for (size_t i = Home(k);; i = (i + 1) & mask) {
    Entry& e = slots_[i];
    if (Empty(e)) {
      e = Entry{k, INT64_MIN, nullptr, 0, 0};
      ++size_;
      *inserted = true;
      return &e;
    }
    if (e.key == k) {
      *inserted = false;
      return &e;
    }
  }
}

void VisitorTable::SetState(Entry* e, std::string_view bytes) {
  if (bytes.empty()) {
    std::free(e->state);
    e->state = nullptr;
    e->state_size = 0;
    return;
  }
  if (bytes.size() != e->state_size) {
    char* p = static_cast<char*>(std::realloc(e->state, bytes.size()));
    if (p == nullptr) std::abort();  // out of memory: nothing sensible is left to do
    e->state = p;
  }
  std::memcpy(e->state, bytes.data(), bytes.size());
  e->state_size = static_cast<uint32_t>(bytes.size());
}

size_t VisitorTable::MemoryBytes() const {
  size_t n = slots_.bytes();
  // malloc_usable_size plus the allocator's 8-byte chunk header.
  ForEach([&n](const Entry& e) {
    if (e.state != nullptr) n += malloc_usable_size(e.state) + sizeof(size_t);
  });
  return n;
}

void VisitorTable::Clear() {
  for (Entry& e : slots_) {
    if (!Empty(e)) std::free(e.state);
    e = Entry{};
  }
  size_ = 0;
}

void VisitorTable::ShrinkIfSparse() {
  size_t capacity = slots_.size();
  while (capacity > 1024 && size_ * 10 <= (capacity / 2) * 6) capacity /= 2;
  if (capacity != slots_.size()) Rehash(capacity);
}

void VisitorTable::Rehash(size_t capacity) {
  ZeroedArray<Entry> old(capacity);
  std::swap(old, slots_);
  const size_t mask = slots_.size() - 1;
  for (const Entry& e : old) {
    if (Empty(e)) continue;
    size_t i = Home(e.key);
    while (!Empty(slots_[i])) i = (i + 1) & mask;
    slots_[i] = e;
  }
}

}  // namespace duet::speed
