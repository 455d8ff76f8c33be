// The Store contract, run against every backend (a TYPED_TEST_SUITE: add a backend by adding a
// factory to Backends). Built twice: store_test runs it against SQLite; store_mongo_test
// (DUET_STORE_TEST_MONGO) against a real MongoDB-wire server — FerretDB, started by CTest's
// ferretdb fixture (scripts/ferretdb.sh), or the server named by DUET_TEST_MONGODB.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite_store.h"
#include "store/store.h"

namespace duet::store {
namespace {

struct SqliteBackend {
  static std::string Uri(const std::string& name) {
    const auto dir =
        std::filesystem::path(::testing::TempDir()) / ("duet_store_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path = dir / (name + ".sqlite");
    std::filesystem::remove(path);
    std::filesystem::remove(path.string() + "-wal");
    std::filesystem::remove(path.string() + "-shm");
    return "sqlite:" + path.string();
  }
};

// One fresh database per test on the fixture's server.
struct MongoBackend {
  static std::string Server() {
    if (const char* u = std::getenv("DUET_TEST_MONGODB"); u != nullptr && *u != '\0') return u;
#ifdef DUET_TEST_FIXTURE_DIR
    std::ifstream in(std::string(DUET_TEST_FIXTURE_DIR) + "/uri");
    std::string uri;
    std::getline(in, uri);
    return uri;
#else
    return "";
#endif
  }
  static std::string Uri(const std::string& /*name*/) {
    static int n = 0;
    const std::string server = Server();
    EXPECT_FALSE(server.empty())
        << "no MongoDB server: run this test through CTest, whose ferretdb fixture starts one "
           "(scripts/ferretdb.sh), or set DUET_TEST_MONGODB=mongodb://HOST:PORT";
    return server + "/duet_test_" + std::to_string(::getpid()) + "_" + std::to_string(++n);
  }
};

template <typename Backend>
class StoreContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uri_ = Backend::Uri(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto s = OpenStore(uri_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  static core::Views SampleViews(int64_t scale) {
    core::Views v;
    core::FigureValues f;
    f.visitors = 3 * scale;
    f.sessions = 5 * scale;
    f.revenue = 0.1 + 0.2;  // not a round number: must come back bit-exact
    f.revenue_sq = 1e-300;
    v.totals.push_back({"", "", 0, f});
    v.totals.push_back({"exp", "control", 0, f});
    v.hourly.push_back({"exp", "control", 492636, f});
    v.uniques.push_back({"exp", "control", 492636, 2, 3});
    v.experiments.push_back({"exp", scale});
    v.input = {10 * scale, scale, scale, 8 * scale, 0, {{"json.syntax", scale}}};
    v.min_ts = 1;
    v.max_ts = 2 * scale;
    return v;
  }
  static core::BadRow Bad(const std::string& source, uint64_t offset) {
    return core::BadRow{beacon::BadReason::kJsonSyntax, source, 1, offset, 5, false,
                        std::string("{\xff\0x", 4)};
  }

  std::string uri_;
  std::unique_ptr<Store> store_;
};

#ifdef DUET_STORE_TEST_MONGO
using Backends = ::testing::Types<MongoBackend>;
#else
using Backends = ::testing::Types<SqliteBackend>;
#endif
TYPED_TEST_SUITE(StoreContractTest, Backends);

TYPED_TEST(StoreContractTest, EmptyStoreReadsAsEmptyViews) {
  auto v = this->store_->ReadBatchViews();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, core::Views());
  auto run = this->store_->LastBatchRun();
  ASSERT_TRUE(run.ok());
  EXPECT_FALSE(run->has_value());
}

TYPED_TEST(StoreContractTest, CommittedViewsReadBackExactly) {
  auto gen = this->store_->BeginBatch();
  ASSERT_TRUE(gen.ok());
  const core::Views views = this->SampleViews(1);
  ASSERT_TRUE(this->store_->CommitBatch(*gen, views, BatchRun{*gen, 1, 2, "in", 2, 10}).ok());
  auto back = this->store_->ReadBatchViews();
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, views);
  auto run = this->store_->LastBatchRun();
  ASSERT_TRUE(run.ok() && run->has_value());
  EXPECT_EQ((*run)->high_water_mark_ms, 2);
  EXPECT_EQ((*run)->generation, *gen);
}

TYPED_TEST(StoreContractTest, CommitReplacesInsteadOfAdding) {
  for (int i = 0; i < 2; ++i) {
    auto gen = this->store_->BeginBatch();
    ASSERT_TRUE(gen.ok());
    ASSERT_TRUE(
        this->store_->PutBadRows(*gen, std::vector{this->Bad("f", 0), this->Bad("f", 9)}).ok());
    ASSERT_TRUE(this->store_->CommitBatch(*gen, this->SampleViews(1), BatchRun{*gen}).ok());
  }
  auto back = this->store_->ReadBatchViews();
  EXPECT_EQ(*back, this->SampleViews(1));
  auto rows = this->store_->ReadBadRows(BadRowQuery{});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 2u);
}

TYPED_TEST(StoreContractTest, UncommittedRunIsInvisibleAndCleanedUp) {
  auto g1 = this->store_->BeginBatch();
  ASSERT_TRUE(this->store_->PutBadRows(*g1, std::vector{this->Bad("old", 0)}).ok());
  ASSERT_TRUE(this->store_->CommitBatch(*g1, this->SampleViews(1), BatchRun{*g1}).ok());
  // A run that crashes after writing bad rows.
  auto g2 = this->store_->BeginBatch();
  ASSERT_TRUE(g2.ok());
  EXPECT_GT(*g2, *g1);
  ASSERT_TRUE(
      this->store_->PutBadRows(*g2, std::vector{this->Bad("new", 0), this->Bad("new", 1)}).ok());
  auto rows = this->store_->ReadBadRows(BadRowQuery{});
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].source, "old");
  EXPECT_EQ(*this->store_->ReadBatchViews(), this->SampleViews(1));
  // The next run starts clean and commits.
  auto g3 = this->store_->BeginBatch();
  ASSERT_TRUE(this->store_->CommitBatch(*g3, this->SampleViews(2), BatchRun{*g3}).ok());
  EXPECT_EQ(*this->store_->ReadBatchViews(), this->SampleViews(2));
  EXPECT_TRUE(this->store_->ReadBadRows(BadRowQuery{})->empty());
  // The abandoned run cannot commit any more.
  EXPECT_FALSE(this->store_->CommitBatch(*g2, this->SampleViews(3), BatchRun{*g2}).ok());
}

TYPED_TEST(StoreContractTest, BadRowsKeepPayloadBytesAndFilterByReason) {
  auto gen = this->store_->BeginBatch();
  core::BadRow other = this->Bad("f", 100);
  other.reason = beacon::BadReason::kTsNotInteger;
  other.truncated = true;
  other.length = 70000;
  ASSERT_TRUE(this->store_->PutBadRows(*gen, std::vector{this->Bad("f", 0), other}).ok());
  // Re-putting the same row is idempotent.
  ASSERT_TRUE(this->store_->PutBadRows(*gen, std::vector{this->Bad("f", 0)}).ok());
  ASSERT_TRUE(this->store_->CommitBatch(*gen, core::Views(), BatchRun{*gen}).ok());
  auto all = this->store_->ReadBadRows(BadRowQuery{});
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].payload, std::string("{\xff\0x", 4));
  BadRowQuery q;
  q.reason = "ts.not_integer";
  auto some = this->store_->ReadBadRows(q);
  ASSERT_EQ(some->size(), 1u);
  EXPECT_TRUE((*some)[0].truncated);
  EXPECT_EQ((*some)[0].length, 70000u);
  q.reason.reset();
  q.limit = 1;
  EXPECT_EQ(this->store_->ReadBadRows(q)->size(), 1u);
}

TYPED_TEST(StoreContractTest, ReopeningKeepsCommittedState) {
  auto gen = this->store_->BeginBatch();
  ASSERT_TRUE(this->store_->CommitBatch(*gen, this->SampleViews(4), BatchRun{*gen}).ok());
  this->store_.reset();
  auto again = OpenStore(this->uri_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*(*again)->ReadBatchViews(), this->SampleViews(4));
}

TYPED_TEST(StoreContractTest, SpeedCommitKeepsViewsBadRowsAndCheckpointTogether) {
  auto none = this->store_->LoadSpeedCheckpoint("");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  // A state larger than one chunk, with every byte value.
  std::string state(20 << 20, '\0');
  for (size_t i = 0; i < state.size(); ++i) state[i] = static_cast<char>(i * 7);
  SpeedCheckpoint cp{"", 1, state, "positions-1"};
  cp.views_state = "views-1";
  cp.delta_state = "delta-1";
  cp.delta_boundary_ms = 77;
  ASSERT_TRUE(this->store_->CommitSpeed(std::vector{this->Bad("s", 3)}, cp).ok());
  auto back = this->store_->LoadSpeedCheckpoint("");
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->epoch, 1);
  EXPECT_EQ((*back)->positions, "positions-1");
  EXPECT_TRUE((*back)->state == state);
  EXPECT_EQ((*back)->views_state, "views-1");
  EXPECT_EQ((*back)->delta_state, "delta-1");
  EXPECT_EQ((*back)->delta_boundary_ms, 77);
  auto scopes = this->store_->ReadSpeedScopes();
  ASSERT_TRUE(scopes.ok());
  ASSERT_EQ(scopes->size(), 1u);
  EXPECT_EQ((*scopes)[0].views_state, "views-1");
  EXPECT_EQ((*scopes)[0].positions, "positions-1");
  EXPECT_EQ(*this->store_->ReadBatchViews(), core::Views());  // layers stay apart
  BadRowQuery q;
  q.layer = Layer::kSpeed;
  EXPECT_EQ(this->store_->ReadBadRows(q)->size(), 1u);
  // Replaying the same micro-batch's bad rows under the next epoch adds nothing.
  ASSERT_TRUE(this->store_
                  ->CommitSpeed(std::vector{this->Bad("s", 3)},
                                SpeedCheckpoint{"", 2, "small", "positions-2"})
                  .ok());
  EXPECT_EQ(this->store_->ReadBadRows(q)->size(), 1u);
  EXPECT_EQ((*this->store_->LoadSpeedCheckpoint(""))->state, "small");
}

TYPED_TEST(StoreContractTest, SpeedRecordsArePutAndDeletedIncrementally) {
  SpeedCheckpoint cp{"", 1, "s1", "p1"};
  cp.put_records = {{"a", "1"}, {"b", std::string("\0\xff", 2)}, {"c", "3"}};
  ASSERT_TRUE(this->store_->CommitSpeed({}, cp).ok());
  SpeedCheckpoint cp2{"", 2, "s2", "p2"};
  cp2.put_records = {{"a", "one"}, {"d", "4"}};
  cp2.delete_keys = {"c", "d"};  // deleting a key put in the same commit wins
  ASSERT_TRUE(this->store_->CommitSpeed({}, cp2).ok());
  auto back = this->store_->LoadSpeedCheckpoint("");
  ASSERT_TRUE(back.ok() && back->has_value());
  auto records = (*back)->records;
  std::sort(records.begin(), records.end());
  const std::vector<std::pair<std::string, std::string>> want = {{"a", "one"},
                                                                 {"b", std::string("\0\xff", 2)}};
  EXPECT_EQ(records, want);
  EXPECT_EQ((*back)->state, "s2");
}

TYPED_TEST(StoreContractTest, ReplacingRecordsDropsOnlyThoseWithThePrefix) {
  SpeedCheckpoint cp{"", 1, "s1", "p1"};
  cp.put_records = {{"i1", "ids"}, {"v\x01", "a"}, {"v\xff", "b"}, {"w", "c"}, {"\xff\xff", "d"}};
  ASSERT_TRUE(this->store_->CommitSpeed({}, cp).ok());
  SpeedCheckpoint cp2{"", 2, "s2", "p2"};
  cp2.replace_records = true;
  cp2.replace_prefix = "v";
  cp2.put_records = {{"f", "snapshot"}};
  ASSERT_TRUE(this->store_->CommitSpeed({}, cp2).ok());
  auto records = (*this->store_->LoadSpeedCheckpoint(""))->records;
  std::sort(records.begin(), records.end());
  const std::vector<std::pair<std::string, std::string>> want = {
      {"f", "snapshot"}, {"i1", "ids"}, {"w", "c"}, {"\xff\xff", "d"}};
  EXPECT_EQ(records, want);
  SpeedCheckpoint cp3{"", 3, "s3", "p3"};
  cp3.replace_records = true;
  cp3.replace_prefix = "\xff";  // no upper bound: every key from the prefix on
  ASSERT_TRUE(this->store_->CommitSpeed({}, cp3).ok());
  EXPECT_EQ((*this->store_->LoadSpeedCheckpoint(""))->records.size(), 3u);
  SpeedCheckpoint cp4{"", 4, "s4", "p4"};
  cp4.replace_records = true;  // empty prefix: everything
  ASSERT_TRUE(this->store_->CommitSpeed({}, cp4).ok());
  EXPECT_TRUE((*this->store_->LoadSpeedCheckpoint(""))->records.empty());
}

TYPED_TEST(StoreContractTest, SpeedCommitOutOfEpochOrderIsAbortedAndChangesNothing) {
  ASSERT_TRUE(this->store_->CommitSpeed({}, SpeedCheckpoint{"", 1, "a", "p1"}).ok());
  for (const int64_t wrong : {1, 3, 0}) {
    const Status s = this->store_->CommitSpeed({}, SpeedCheckpoint{"", wrong, "b", "p"});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kAborted);
  }
  EXPECT_EQ((*this->store_->LoadSpeedCheckpoint(""))->positions, "p1");
  EXPECT_EQ((*this->store_->LoadSpeedCheckpoint(""))->state, "a");
}

// Writer lease: taken when free or expired (token + 1), renewed by its holder (same token),
// refused to others while valid.
TYPED_TEST(StoreContractTest, WriterLeaseIsTakenRenewedAndHandedOverWithNewTokens) {
  Store& s = *this->store_;
  EXPECT_FALSE(s.ReadWriterLease("speed")->has_value());
  auto a = s.AcquireWriterLease("speed", "region-a", 1000, 3000);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->token, 1);
  EXPECT_EQ(a->expires_ms, 4000);
  auto b = s.AcquireWriterLease("speed", "region-b", 2000, 3000);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kAborted);
  EXPECT_NE(b.status().message().find("held by 'region-a' (token 1) for 2000 ms more"),
            std::string::npos)
      << b.status().message();
  a = s.AcquireWriterLease("speed", "region-a", 3500, 3000);  // renewal
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->token, 1);
  EXPECT_EQ(a->expires_ms, 6500);
  EXPECT_FALSE(s.AcquireWriterLease("speed", "region-b", 6500, 3000).ok());  // valid to the ms
  b = s.AcquireWriterLease("speed", "region-b", 6501, 3000);                 // expired: handed over
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->token, 2);
  auto back = s.AcquireWriterLease("speed", "region-a", 7000, 3000);
  ASSERT_FALSE(back.ok()) << "the old holder must not renew a lease handed over";
  EXPECT_EQ(back.status().code(), StatusCode::kAborted);
  auto read = s.ReadWriterLease("speed");
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->holder, "region-b");
  EXPECT_EQ((*read)->token, 2);
  EXPECT_EQ((*read)->expires_ms, 9501);
  EXPECT_TRUE(s.AcquireWriterLease("other", "region-a", 7000, 3000).ok()) << "leases are by name";
}

// Fencing: a commit under a token that is not the lease's current one is refused even when its
// epoch follows, and changes nothing; the new holder commits.
TYPED_TEST(StoreContractTest, SpeedCommitUnderAStaleLeaseTokenIsFencedOff) {
  Store& s = *this->store_;
  ASSERT_TRUE(s.AcquireWriterLease("speed", "a", 1000, 1000).ok());
  SpeedCheckpoint cp{"beacons/0", 1, "s1", "p1"};
  cp.lease = "speed";
  cp.lease_token = 1;
  ASSERT_TRUE(s.CommitSpeed({}, cp).ok());
  ASSERT_TRUE(s.AcquireWriterLease("speed", "b", 5000, 1000).ok());  // a's lease expired
  SpeedCheckpoint zombie{"beacons/0", 2, "zombie", "pz"};
  zombie.lease = "speed";
  zombie.lease_token = 1;
  const Status fenced = s.CommitSpeed({}, zombie);
  ASSERT_FALSE(fenced.ok());
  EXPECT_EQ(fenced.code(), StatusCode::kAborted);
  EXPECT_NE(fenced.message().find("fenced off: written under token 1 of writer lease 'speed', "
                                  "whose token is 2 (holder 'b')"),
            std::string::npos)
      << fenced.message();
  EXPECT_EQ((*s.LoadSpeedCheckpoint("beacons/0"))->state, "s1");
  SpeedCheckpoint next{"beacons/0", 2, "s2", "p2"};
  next.lease = "speed";
  next.lease_token = 2;
  ASSERT_TRUE(s.CommitSpeed({}, next).ok());
  EXPECT_EQ((*s.LoadSpeedCheckpoint("beacons/0"))->state, "s2");
  SpeedCheckpoint never{"beacons/1", 1, "x", "px"};
  never.lease = "unknown";
  never.lease_token = 1;
  EXPECT_EQ(s.CommitSpeed({}, never).code(), StatusCode::kAborted) << "a lease never taken";
}

// Of concurrent takers of an expired lease, exactly one gets it.
TYPED_TEST(StoreContractTest, ConcurrentTakersOfALeaseHaveOneWinner) {
  constexpr int kThreads = 6;
  for (int round = 0; round < 4; ++round) {
    const int64_t now = 10'000 * (round + 1);
    std::vector<Result<WriterLease>> results(kThreads, Status::Aborted("not run"));
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([this, t, now, &results, &ready] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        results[t] = this->store_->AcquireWriterLease(
            "speed", "r" + std::to_string(t) + "-" + std::to_string(now), now, 5000);
      });
    }
    for (std::thread& th : threads) th.join();
    int winners = 0;
    for (const auto& r : results) {
      if (r.ok()) {
        ++winners;
        EXPECT_EQ(r->token, round + 1);
      } else {
        EXPECT_EQ(r.status().code(), StatusCode::kAborted) << r.status().ToString();
      }
    }
    EXPECT_EQ(winners, 1) << "round " << round;
  }
}

// A consumer group keeps one checkpoint per partition: scopes never see each other's epochs,
// state or records, and a reader sees all of them.
TYPED_TEST(StoreContractTest, SpeedScopesAreIndependent) {
  SpeedCheckpoint a{"beacons/0", 1, "a1", "pa1"};
  a.put_records = {{"v1", "x"}, {"v2", "y"}};
  a.views_state = "va";
  ASSERT_TRUE(this->store_->CommitSpeed({}, a).ok());
  SpeedCheckpoint b{"beacons/1", 1, "b1", "pb1"};  // its own epoch 1
  b.put_records = {{"v1", "other"}};
  b.views_state = "vb";
  ASSERT_TRUE(this->store_->CommitSpeed({}, b).ok());
  // A full snapshot of one scope drops only that scope's records.
  SpeedCheckpoint a2{"beacons/0", 2, "a2", "pa2"};
  a2.replace_records = true;
  a2.views_state = "va2";
  ASSERT_TRUE(this->store_->CommitSpeed({}, a2).ok());
  // An epoch that does not follow its own scope's is refused, whatever the other scopes hold.
  EXPECT_EQ(this->store_->CommitSpeed({}, SpeedCheckpoint{"beacons/1", 3, "x", "x"}).code(),
            StatusCode::kAborted);
  auto la = this->store_->LoadSpeedCheckpoint("beacons/0");
  auto lb = this->store_->LoadSpeedCheckpoint("beacons/1");
  ASSERT_TRUE(la.ok() && la->has_value() && lb.ok() && lb->has_value());
  EXPECT_EQ((*la)->epoch, 2);
  EXPECT_EQ((*la)->state, "a2");
  EXPECT_TRUE((*la)->records.empty());
  EXPECT_EQ((*lb)->epoch, 1);
  EXPECT_EQ((*lb)->positions, "pb1");
  ASSERT_EQ((*lb)->records.size(), 1u);
  EXPECT_EQ((*lb)->records[0].second, "other");
  EXPECT_FALSE(this->store_->LoadSpeedCheckpoint("beacons/2")->has_value());
  EXPECT_FALSE(this->store_->LoadSpeedCheckpoint("")->has_value());
  auto scopes = this->store_->ReadSpeedScopes();
  ASSERT_TRUE(scopes.ok());
  ASSERT_EQ(scopes->size(), 2u);
  EXPECT_EQ((*scopes)[0].scope, "beacons/0");
  EXPECT_EQ((*scopes)[0].views_state, "va2");
  EXPECT_EQ((*scopes)[1].scope, "beacons/1");
  EXPECT_EQ((*scopes)[1].epoch, 1);
  auto merge = this->store_->ReadMergeInputs();
  ASSERT_TRUE(merge.ok());
  EXPECT_FALSE(merge->has_batch);
  EXPECT_EQ(merge->speed.size(), 2u);
}

// ---- model registry

TYPED_TEST(StoreContractTest, EmptyModelRegistryHasNoVersionsAndNoCurrent) {
  auto list = this->store_->ListModels();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_TRUE(list->empty());
  auto current = this->store_->CurrentModel();
  ASSERT_TRUE(current.ok()) << current.status().ToString();
  EXPECT_EQ(*current, 0);
  auto read = this->store_->ReadModel(1);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound) << read.status().ToString();
}

TYPED_TEST(StoreContractTest, RegisteredModelsReadBackExactlyAndAreNotPromoted) {
  // A file larger than two of MongoDB's chunks, holding NUL and every other byte value.
  std::string big(9 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) >> 3);
  const std::string meta1 = R"({"features":["sessions","pageviews"],"auc":0.71})";
  const std::string meta2 = R"({"features":["sessions"],"note":"caf\u00e9 – é"})";
  const std::string small("{\0U\xff", 4);
  auto r1 = this->store_->RegisterModel(meta1, big, 1700000000123);
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  auto r2 = this->store_->RegisterModel(meta2, small, 1700000999000);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  const ModelInfo want1{1, 1700000000123, meta1};
  const ModelInfo want2{2, 1700000999000, meta2};
  EXPECT_EQ(*r1, want1);
  EXPECT_EQ(*r2, want2);

  auto m1 = this->store_->ReadModel(1);
  ASSERT_TRUE(m1.ok()) << m1.status().ToString();
  EXPECT_EQ(m1->info, want1);
  ASSERT_EQ(m1->bytes.size(), big.size());
  EXPECT_TRUE(m1->bytes == big);  // not EXPECT_EQ: a mismatch would print 9 MB
  auto m2 = this->store_->ReadModel(2);
  ASSERT_TRUE(m2.ok()) << m2.status().ToString();
  EXPECT_EQ(m2->info, want2);
  EXPECT_EQ(m2->bytes, small);
  EXPECT_EQ(this->store_->ReadModel(3).status().code(), StatusCode::kNotFound);

  auto list = this->store_->ListModels();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(*list, (std::vector<ModelInfo>{want1, want2}));
  EXPECT_EQ(*this->store_->CurrentModel(), 0);  // registering does not promote
}

TYPED_TEST(StoreContractTest, PromotionIsACompareAndSet) {
  ASSERT_TRUE(this->store_->RegisterModel("{}", "one", 1).ok());
  ASSERT_TRUE(this->store_->RegisterModel("{}", "two", 2).ok());
  const Status first = this->store_->PromoteModel(1, 0);
  ASSERT_TRUE(first.ok()) << first.ToString();
  EXPECT_EQ(*this->store_->CurrentModel(), 1);
  // A trainer that still believes nothing is current loses, and changes nothing.
  const Status stale = this->store_->PromoteModel(2, 0);
  EXPECT_EQ(stale.code(), StatusCode::kAborted) << stale.ToString();
  EXPECT_EQ(*this->store_->CurrentModel(), 1);
  const Status second = this->store_->PromoteModel(2, 1);
  ASSERT_TRUE(second.ok()) << second.ToString();
  EXPECT_EQ(*this->store_->CurrentModel(), 2);
  // Rolling back is a promotion like any other, and also needs the right expectation.
  EXPECT_EQ(this->store_->PromoteModel(1, 1).code(), StatusCode::kAborted);
  EXPECT_EQ(*this->store_->CurrentModel(), 2);
  ASSERT_TRUE(this->store_->PromoteModel(1, 2).ok());
  EXPECT_EQ(*this->store_->CurrentModel(), 1);
  EXPECT_EQ(this->store_->ListModels()->size(), 2u);  // promoting registers nothing
}

TYPED_TEST(StoreContractTest, PromotingAnUnregisteredVersionIsNotFound) {
  const Status none = this->store_->PromoteModel(1, 0);
  EXPECT_EQ(none.code(), StatusCode::kNotFound) << none.ToString();
  EXPECT_EQ(*this->store_->CurrentModel(), 0);
  ASSERT_TRUE(this->store_->RegisterModel("{}", "one", 1).ok());
  EXPECT_EQ(this->store_->PromoteModel(2, 0).code(), StatusCode::kNotFound);
  EXPECT_EQ(this->store_->PromoteModel(0, 0).code(), StatusCode::kNotFound);
  EXPECT_EQ(*this->store_->CurrentModel(), 0);
  ASSERT_TRUE(this->store_->PromoteModel(1, 0).ok());
  EXPECT_EQ(this->store_->PromoteModel(7, 1).code(), StatusCode::kNotFound);
  EXPECT_EQ(*this->store_->CurrentModel(), 1);
}

// Trainers racing to promote: in each round all of them expect the same current version (none,
// at first), so one wins and the others learn that they lost.
TYPED_TEST(StoreContractTest, ConcurrentPromotionsHaveOneWinner) {
  constexpr int kThreads = 8;
  constexpr int64_t kVersions = kThreads + 1;
  for (int64_t v = 1; v <= kVersions; ++v) {
    ASSERT_TRUE(this->store_->RegisterModel("{}", "m", v).ok());
  }
  int64_t current = 0;
  for (int round = 0; round < 5; ++round) {
    // Each thread promotes a version other than the current one.
    std::vector<int64_t> targets;
    for (int64_t v = 1; v <= kVersions; ++v) {
      if (v != current) targets.push_back(v);
    }
    std::vector<Status> results(kThreads);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([this, t, current, &targets, &results, &ready] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        results[t] = this->store_->PromoteModel(targets[t], current);
      });
    }
    for (std::thread& th : threads) th.join();
    int64_t winner = 0;
    for (int t = 0; t < kThreads; ++t) {
      if (results[t].ok()) {
        EXPECT_EQ(winner, 0) << "round " << round << ": versions " << winner << " and "
                             << targets[t] << " both promoted from " << current;
        winner = targets[t];
      } else {
        EXPECT_EQ(results[t].code(), StatusCode::kAborted) << results[t].ToString();
      }
    }
    ASSERT_NE(winner, 0) << "round " << round;
    ASSERT_EQ(*this->store_->CurrentModel(), winner);
    current = winner;
  }
}

TYPED_TEST(StoreContractTest, ConcurrentRegistrationsGetDistinctVersions) {
  constexpr int kThreads = 4;
  constexpr int kEach = 5;
  struct Registered {
    Status status;
    ModelInfo info;
    std::string bytes;
  };
  std::vector<std::vector<Registered>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &got] {
      for (int i = 0; i < kEach; ++i) {
        const std::string name = std::to_string(t) + "/" + std::to_string(i);
        const std::string bytes = "model " + name + std::string(1, '\0');
        auto r = this->store_->RegisterModel(R"({"by":")" + name + R"("})", bytes, 100 * t + i);
        got[t].push_back({r.ok() ? Status::Ok() : r.status(), r.ok() ? *r : ModelInfo{}, bytes});
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::map<int64_t, Registered> by_version;
  for (const auto& per_thread : got) {
    for (const Registered& r : per_thread) {
      ASSERT_TRUE(r.status.ok()) << r.status.ToString();
      EXPECT_TRUE(by_version.emplace(r.info.version, r).second)
          << "version " << r.info.version << " given twice";
    }
  }
  ASSERT_EQ(by_version.size(), size_t{kThreads * kEach});
  EXPECT_EQ(by_version.begin()->first, 1);
  EXPECT_EQ(by_version.rbegin()->first, kThreads * kEach);
  // Each version holds what its registration wrote.
  auto list = this->store_->ListModels();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), size_t{kThreads * kEach});
  for (size_t i = 0; i < list->size(); ++i) {
    const ModelInfo& info = (*list)[i];
    EXPECT_EQ(info.version, static_cast<int64_t>(i + 1));
    EXPECT_EQ(info, by_version[info.version].info);
    auto m = this->store_->ReadModel(info.version);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->bytes, by_version[info.version].bytes);
  }
}

TYPED_TEST(StoreContractTest, ReopenedStoreSeesTheSameRegistry) {
  std::string bytes(5 << 20, 'x');
  bytes[0] = '\0';
  bytes.back() = '\xff';
  ASSERT_TRUE(this->store_->RegisterModel(R"({"v":1})", "first", 10).ok());
  ASSERT_TRUE(this->store_->RegisterModel(R"({"v":2})", bytes, 20).ok());
  ASSERT_TRUE(this->store_->PromoteModel(2, 0).ok());
  this->store_.reset();
  auto again = OpenStore(this->uri_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  Store& store = **again;
  const std::vector<ModelInfo> want = {{1, 10, R"({"v":1})"}, {2, 20, R"({"v":2})"}};
  EXPECT_EQ(*store.ListModels(), want);
  EXPECT_EQ(*store.CurrentModel(), 2);
  auto m = store.ReadModel(2);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->bytes == bytes);
  // Numbers go on from the stored ones, and the stored current version still guards promotion.
  auto next = store.RegisterModel("{}", "third", 30);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(next->version, 3);
  EXPECT_EQ(store.PromoteModel(3, 0).code(), StatusCode::kAborted);
  EXPECT_TRUE(store.PromoteModel(3, 2).ok());
}

// ---- jobs

TYPED_TEST(StoreContractTest, QueuedJobsGetIncreasingIdsAndReadBack) {
  Store& s = *this->store_;
  auto a = s.EnqueueJob("train", R"({"rounds":5})", 1000, false);
  auto b = s.EnqueueJob("batch", "{}", 2000, false);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_GT(b->id, a->id);
  EXPECT_EQ(a->state, JobState::kQueued);
  EXPECT_EQ(a->params, R"({"rounds":5})");
  auto got = s.GetJob(a->id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, *a);
  auto list = s.ListJobs(10);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0], *b);  // newest first
  EXPECT_EQ((*list)[1], *a);
  EXPECT_EQ(s.ListJobs(1)->size(), 1u);
  EXPECT_EQ(s.GetJob(b->id + 100).status().code(), StatusCode::kNotFound);
}

TYPED_TEST(StoreContractTest, DedupeReturnsTheQueuedOrRunningJobOfTheKind) {
  Store& s = *this->store_;
  auto first = s.EnqueueJob("batch", "{}", 1000, true);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto again = s.EnqueueJob("batch", "{}", 2000, true);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, first->id);
  // Another kind is not deduplicated against it, nor is a call without dedupe.
  EXPECT_NE(s.EnqueueJob("train", "{}", 2000, true)->id, first->id);
  auto claimed = s.ClaimJob({"batch"}, "w", 3000, 10'000);
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  auto while_running = s.EnqueueJob("batch", "{}", 4000, true);
  ASSERT_TRUE(while_running.ok());
  EXPECT_EQ(while_running->id, first->id);
  EXPECT_EQ(while_running->state, JobState::kRunning);
  ASSERT_TRUE(s.FinishJob(first->id, (*claimed)->token, true, "done", 5000).ok());
  auto after = s.EnqueueJob("batch", "{}", 6000, true);
  ASSERT_TRUE(after.ok());
  EXPECT_NE(after->id, first->id);
  EXPECT_EQ(after->state, JobState::kQueued);
}

TYPED_TEST(StoreContractTest, ClaimTakesTheOldestQueuedJobOfTheKindsAndFinishes) {
  Store& s = *this->store_;
  const int64_t t1 = s.EnqueueJob("train", "{}", 1000, false)->id;
  const int64_t b1 = s.EnqueueJob("batch", "{}", 1001, false)->id;
  auto none = s.ClaimJob({"other"}, "w", 2000, 10'000);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value());
  auto c = s.ClaimJob({"batch", "train"}, "worker-1", 2000, 10'000);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->has_value());
  const JobInfo& job = **c;
  EXPECT_EQ(job.id, t1);
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.worker, "worker-1");
  EXPECT_EQ(job.started_ms, 2000);
  EXPECT_EQ(job.lease_until_ms, 12'000);
  EXPECT_GT(job.token, 0);
  ASSERT_TRUE(s.AppendJobLog(t1, job.token, "line 1\n").ok());
  ASSERT_TRUE(s.AppendJobLog(t1, job.token, "line 2\n").ok());
  ASSERT_TRUE(s.RenewJobLease(t1, job.token, 5000, 10'000).ok());
  auto running = s.GetJob(t1);
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->state, JobState::kRunning);
  EXPECT_EQ(running->lease_until_ms, 15'000);
  EXPECT_EQ(running->log, "line 1\nline 2\n");
  ASSERT_TRUE(s.FinishJob(t1, job.token, false, "exit status 3", 6000).ok());
  auto done = s.GetJob(t1);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_EQ(done->message, "exit status 3");
  EXPECT_EQ(done->finished_ms, 6000);
  EXPECT_EQ(done->log, "line 1\nline 2\n");
  // Finished once: every later call with the token is refused.
  EXPECT_EQ(s.FinishJob(t1, job.token, true, "", 7000).code(), StatusCode::kAborted);
  EXPECT_EQ(s.AppendJobLog(t1, job.token, "x").code(), StatusCode::kAborted);
  EXPECT_EQ(s.RenewJobLease(t1, job.token, 7000, 1).code(), StatusCode::kAborted);
  EXPECT_EQ(s.FinishJob(t1 + 100, 1, true, "", 7000).code(), StatusCode::kNotFound);
  auto next = s.ClaimJob({"batch", "train"}, "worker-1", 8000, 10'000);
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->id, b1);
  auto empty = s.ClaimJob({"batch", "train"}, "worker-1", 8000, 10'000);
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());
}

TYPED_TEST(StoreContractTest, AtMostOneJobOfAKindRuns) {
  Store& s = *this->store_;
  const int64_t a = s.EnqueueJob("batch", "{}", 1000, false)->id;
  const int64_t b = s.EnqueueJob("batch", "{}", 1001, false)->id;
  const int64_t t = s.EnqueueJob("train", "{}", 1002, false)->id;
  auto first = s.ClaimJob({"batch", "train"}, "w1", 2000, 10'000);
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_EQ((*first)->id, a);
  // The second batch waits for the first; the train job may run beside it.
  auto second = s.ClaimJob({"batch", "train"}, "w2", 2000, 10'000);
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->id, t);
  auto third = s.ClaimJob({"batch"}, "w3", 2000, 10'000);
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(third->has_value());
  ASSERT_TRUE(s.FinishJob(a, (*first)->token, true, "", 3000).ok());
  auto fourth = s.ClaimJob({"batch"}, "w3", 3000, 10'000);
  ASSERT_TRUE(fourth.ok() && fourth->has_value());
  EXPECT_EQ((*fourth)->id, b);
}

TYPED_TEST(StoreContractTest, ExpiredLeaseFailsTheJobAndFreesItsKindWithoutRerunningIt) {
  Store& s = *this->store_;
  const int64_t a = s.EnqueueJob("batch", "{}", 1000, false)->id;
  const int64_t b = s.EnqueueJob("batch", "{}", 1001, false)->id;
  auto c = s.ClaimJob({"batch"}, "dead", 2000, 10'000);
  ASSERT_TRUE(c.ok() && c->has_value());
  auto early = s.FailExpiredJobs(11'999);
  ASSERT_TRUE(early.ok()) << early.status().ToString();
  EXPECT_EQ(*early, 0);
  // The next claimer fails it first (lease ended at 12,000), then takes the next job.
  auto next = s.ClaimJob({"batch"}, "alive", 12'001, 10'000);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->id, b);
  auto lost = s.GetJob(a);
  ASSERT_TRUE(lost.ok());
  EXPECT_EQ(lost->state, JobState::kFailed);
  EXPECT_EQ(lost->message, "worker lost: lease expired at 1970-01-01T00:00:12Z");
  EXPECT_EQ(lost->finished_ms, 12'001);
  // The dead worker, come back, cannot finish or extend it.
  EXPECT_EQ(s.FinishJob(a, (*c)->token, true, "", 13'000).code(), StatusCode::kAborted);
  EXPECT_EQ(s.RenewJobLease(a, (*c)->token, 13'000, 10'000).code(), StatusCode::kAborted);
  EXPECT_EQ(*s.FailExpiredJobs(13'000), 0);
  // A renewed lease keeps the job.
  EXPECT_TRUE(s.RenewJobLease(b, (*next)->token, 20'000, 10'000).ok());
  EXPECT_EQ(*s.FailExpiredJobs(25'000), 0);
  EXPECT_EQ(*s.FailExpiredJobs(30'001), 1);
  EXPECT_EQ(s.GetJob(b)->state, JobState::kFailed);
}

TYPED_TEST(StoreContractTest, JobLogKeepsItsLastBytesAtALineStart) {
  Store& s = *this->store_;
  const int64_t id = s.EnqueueJob("train", "{}", 1000, false)->id;
  auto c = s.ClaimJob({"train"}, "w", 2000, 10'000);
  ASSERT_TRUE(c.ok() && c->has_value());
  const std::string line(999, 'x');
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(s.AppendJobLog(id, (*c)->token, std::to_string(i % 10) + line + "\n").ok());
  }
  auto job = s.GetJob(id);
  ASSERT_TRUE(job.ok());
  EXPECT_LE(job->log.size(), kJobLogBytes);
  EXPECT_GT(job->log.size(), kJobLogBytes - 1001);
  EXPECT_EQ(job->log.size() % 1001, 0u);  // whole lines only
  EXPECT_EQ(job->log.substr(job->log.size() - 1001, 1), "9");
  // Lists carry no logs.
  EXPECT_EQ((*s.ListJobs(1))[0].log, "");
}

TYPED_TEST(StoreContractTest, ConcurrentClaimersNeverShareAJobOrAKind) {
  Store& s = *this->store_;
  constexpr int kJobsPerKind = 6;
  constexpr int kThreads = 6;
  for (int i = 0; i < kJobsPerKind; ++i) {
    ASSERT_TRUE(s.EnqueueJob("batch", "{}", 1000 + i, false).ok());
    ASSERT_TRUE(s.EnqueueJob("train", "{}", 1000 + i, false).ok());
  }
  // Each thread opens its own store (as separate worker processes would) and loops: claim,
  // check that no other job of the kind runs, finish.
  std::mutex mu;
  std::map<std::string, int> running;
  std::map<int64_t, int> runs;
  std::atomic<bool> overlap{false};
  std::vector<std::thread> threads;
  std::vector<Status> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto opened = OpenStore(this->uri_);
      if (!opened.ok()) {
        errors[t] = opened.status();
        return;
      }
      Store& mine = **opened;
      for (int idle = 0; idle < 3;) {
        auto c = mine.ClaimJob({"batch", "train"}, "w" + std::to_string(t), 2000, 600'000);
        if (!c.ok()) {
          errors[t] = c.status();
          return;
        }
        if (!c->has_value()) {
          ++idle;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        const JobInfo& j = **c;
        {
          std::lock_guard<std::mutex> l(mu);
          if (++running[j.kind] > 1) overlap = true;
          ++runs[j.id];
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        {
          std::lock_guard<std::mutex> l(mu);
          --running[j.kind];
        }
        if (Status f = mine.FinishJob(j.id, j.token, true, "", 3000); !f.ok()) {
          errors[t] = f;
          return;
        }
        idle = 0;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const Status& e : errors) EXPECT_TRUE(e.ok()) << e.ToString();
  EXPECT_FALSE(overlap.load()) << "two jobs of one kind ran at once";
  EXPECT_EQ(runs.size(), size_t{2 * kJobsPerKind});
  for (const auto& [id, n] : runs) EXPECT_EQ(n, 1) << "job " << id << " claimed " << n << " times";
  auto list = s.ListJobs(100);
  ASSERT_TRUE(list.ok());
  for (const JobInfo& j : *list) EXPECT_EQ(j.state, JobState::kSucceeded) << j.id;
}

TYPED_TEST(StoreContractTest, RepeatedDedupedEnqueuesQueueOneJob) {
  // A scheduler that ticks again while its job still waits (store.h: on MongoDB, two dedupe
  // calls racing within moments may both queue).
  Store& s = *this->store_;
  std::vector<int64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(s.EnqueueJob("batch", "{}", 1000 + i, true)->id);
  for (int64_t id : ids) EXPECT_EQ(id, ids[0]);
}

TYPED_TEST(StoreContractTest, ReopenedStoreKeepsQueuedAndRunningJobs) {
  const int64_t a = this->store_->EnqueueJob("train", "{}", 1000, false)->id;
  const int64_t b = this->store_->EnqueueJob("train", "{}", 1001, false)->id;
  auto c = this->store_->ClaimJob({"train"}, "w", 2000, 10'000);
  ASSERT_TRUE(c.ok() && c->has_value());
  this->store_.reset();
  auto again = OpenStore(this->uri_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  Store& s = **again;
  EXPECT_EQ(s.GetJob(a)->state, JobState::kRunning);
  EXPECT_EQ(s.GetJob(b)->state, JobState::kQueued);
  EXPECT_TRUE(s.FinishJob(a, (*c)->token, true, "ok", 3000).ok());
  auto next = s.ClaimJob({"train"}, "w", 4000, 10'000);
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->id, b);
  EXPECT_GT(s.EnqueueJob("train", "{}", 5000, false)->id, b);
}

#ifndef DUET_STORE_TEST_MONGO
TEST(OpenStoreTest, UnknownSchemeIsRejectedWithTheExpectedForm) {
  auto s = OpenStore("postgres://x");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("sqlite:PATH"), std::string::npos);
  EXPECT_FALSE(OpenStore("sqlite:").ok());
}

TEST(OpenStoreTest, UnwritableSqlitePathIsIoError) {
  auto s = OpenStore("sqlite:/nonexistent-dir/x/y.sqlite");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kIoError);
}

TEST(OpenStoreTest, FileThatIsNotADatabaseIsRefused) {
  const std::string path = ::testing::TempDir() + "/duet_not_a_db_" + std::to_string(::getpid());
  {
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("this is not sqlite, just text long enough to be looked at by sqlite......", f);
    std::fclose(f);
  }
  auto s = OpenStore("sqlite:" + path);
  EXPECT_FALSE(s.ok());
  std::filesystem::remove(path);
}

#else
TEST(OpenMongoStoreTest, UriWithoutADatabaseIsRefusedWithTheExpectedForm) {
  auto s = OpenStore(MongoBackend::Server());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("mongodb://HOST:PORT/DB"), std::string::npos)
      << s.status().ToString();
}

TEST(OpenMongoStoreTest, UnreachableServerIsUnavailableQuickly) {
  // Port 1 on loopback: nothing listens there (a privileged port no test server uses).
  const auto start = std::chrono::steady_clock::now();
  auto s = OpenStore("mongodb://127.0.0.1:1/duet?serverSelectionTimeoutMS=300");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable) << s.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(OpenMongoStoreTest, MalformedUriIsInvalidArgument) {
  auto s = OpenStore("mongodb://");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}
#endif

}  // namespace
}  // namespace duet::store
