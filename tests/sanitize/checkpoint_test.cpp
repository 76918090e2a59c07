// checkpoints/checkpoint_file.h and data/token_cache.h, the two HDF5 readers: a written
// state reads back exactly; damaged, truncated, foreign and hostile files (dims that
// multiply past int64) are one abm::Error naming the file.
#include <hdf5.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include "checkpoints/checkpoint_file.h"
#include "checkpoints/h5_io.h"
#include "checkpoints/xxh64.h"
#include "data/token_cache.h"
#include "san_util.h"

namespace abm {
namespace {

using san::TempDir;
using san::write_file;

CheckpointState small_state() {
  CheckpointState s;
  s.step = 5;
  s.epoch = 1;
  s.samples_seen = 20;
  s.tokens_seen = 999;
  s.global_batch = 4;
  s.world_size = 2;
  s.config = "[train]\nlr = 0.001\n";
  s.base_model = "models/default";
  s.base_fingerprint = "abc";
  s.data_fingerprint = "def";
  LoraConfig c;
  c.r = 2;
  c.alpha = 8;
  s.lora = c;
  s.trainable = {{"model.layers.0.self_attn.q_proj.lora_A", at::arange(8, at::kFloat).reshape({2, 4})},
                 {"model.layers.0.self_attn.q_proj.lora_B", at::full({4, 2}, 0.5f)}};
  for (auto& [n, t] : s.trainable) {
    s.optimizer.exp_avg.push_back(t * 2);
    s.optimizer.exp_avg_sq.push_back(t * t);
  }
  s.optimizer.step = 5;
  s.scheduler.peak = 1e-3;
  s.scheduler.total = 10;
  s.sampler_seed = 17;
  s.rng = {{"torch_cpu", at::detail::getDefaultCPUGenerator().get_state()}};
  AbmProvenance a;
  a.seed = 9;
  a.samples = {1, 2};
  a.layers = {0};
  a.loss = {0.5};
  a.accuracy = {1.0};
  s.abm = a;
  return s;
}

TEST(Checkpoint, RoundTrip) {
  TempDir t;
  const std::string p = t / "ckpt.h5";
  CheckpointState s = small_state();
  write_checkpoint_file(p, s);
  CheckpointState r = read_checkpoint(p);
  EXPECT_EQ(r.step, 5);
  EXPECT_EQ(r.epoch, 1);
  EXPECT_EQ(r.samples_seen, 20);
  EXPECT_EQ(r.tokens_seen, 999);
  EXPECT_EQ(r.config, s.config);
  EXPECT_EQ(r.data_fingerprint, "def");
  ASSERT_TRUE(r.lora.has_value());
  EXPECT_EQ(r.lora->r, 2);
  ASSERT_EQ(r.trainable.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r.trainable[i].first, s.trainable[i].first);
    EXPECT_TRUE(at::equal(r.trainable[i].second, s.trainable[i].second));
    EXPECT_TRUE(at::equal(r.optimizer.exp_avg[i], s.optimizer.exp_avg[i]));
    EXPECT_TRUE(at::equal(r.optimizer.exp_avg_sq[i], s.optimizer.exp_avg_sq[i]));
  }
  EXPECT_EQ(r.optimizer.step, 5);
  EXPECT_DOUBLE_EQ(r.scheduler.peak, 1e-3);
  EXPECT_EQ(r.sampler_seed, 17u);
  ASSERT_EQ(r.rng.size(), 1u);
  EXPECT_TRUE(at::equal(r.rng[0].second, s.rng[0].second));
  ASSERT_TRUE(r.abm.has_value());
  EXPECT_EQ(r.abm->samples, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(state_bytes(r), state_bytes(s));
}

TEST(Checkpoint, NotACheckpoint) {
  TempDir t;
  EXPECT_ABM_ERROR(read_checkpoint(t / "none.h5"), t / "none.h5", "cannot open");
  EXPECT_ABM_ERROR(read_checkpoint(t.path), t.path, "not a file");
  EXPECT_ABM_ERROR(read_checkpoint("/dev/zero"), "/dev/zero", "not a file");
  write_file(t / "text.h5", "this is not HDF5\n");
  EXPECT_ABM_ERROR(read_checkpoint(t / "text.h5"), t / "text.h5", "not a readable HDF5 file");
  write_file(t / "empty.h5", "");
  EXPECT_ABM_ERROR(read_checkpoint(t / "empty.h5"), t / "empty.h5", "not a readable HDF5 file");
  // A valid HDF5 file that is not ours.
  hid_t f = H5Fcreate((t / "other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  H5Fclose(f);
  EXPECT_ABM_ERROR(read_checkpoint(t / "other.h5"), t / "other.h5", "not an abmlora checkpoint");
}

TEST(Checkpoint, EveryTruncationIsAnError) {
  TempDir t;
  const std::string p = t / "ckpt.h5";
  write_checkpoint_file(p, small_state());
  const std::string full = san::read_file(p);
  for (size_t cut : {size_t(0), size_t(7), size_t(100), full.size() / 3, full.size() / 2,
                     full.size() - 100, full.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    write_file(t / "cut.h5", full.substr(0, cut));
    EXPECT_ABM_ERROR(read_checkpoint(t / "cut.h5"), t / "cut.h5");
  }
}

TEST(Checkpoint, ByteFlipsAreErrorsOrHarmless) {
  TempDir t;
  const std::string p = t / "ckpt.h5";
  write_checkpoint_file(p, small_state());
  const std::string full = san::read_file(p);
  int refused = 0;
  for (size_t at = 0; at < full.size(); at += 97) {
    std::string bad = full;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    write_file(t / "flip.h5", bad);
    try {
      CheckpointState s = read_checkpoint(t / "flip.h5");
      EXPECT_EQ(s.trainable.size(), 2u);  // read: then it must be whole
    } catch (const Error& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find(t / "flip.h5"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(refused, 0);
}

// The case: a dataset whose dims multiply past int64 (/rng/torch_cpu as 256^8).
TEST(Checkpoint, DimsPastInt64AreAnError) {
  TempDir t;
  const std::string p = t / "ckpt.h5";
  write_checkpoint_file(p, small_state());
  {
    hid_t fapl = ckpt_fapl();
    hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, fapl);
    ASSERT_GE(f, 0);
    hid_t rng = H5Gopen2(f, "rng", H5P_DEFAULT);
    ASSERT_GE(H5Ldelete(rng, "torch_cpu", H5P_DEFAULT), 0);
    hsize_t dims[8] = {256, 256, 256, 256, 256, 256, 256, 256};
    hsize_t maxd[8] = {H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED,
                       H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED};
    hid_t space = H5Screate_simple(8, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    H5Pset_chunk(dcpl, 8, chunk);
    hid_t ds = H5Dcreate2(rng, "torch_cpu", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    put_attr(ds, "dtype", std::string("U8"));
    put_attr(ds, "xxh64", uint64_t(0));
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Gclose(rng);
    H5Fclose(f);
    H5Pclose(fapl);
  }
  EXPECT_ABM_ERROR(read_checkpoint(p), p, "/rng/torch_cpu: claims");
}

TEST(Checkpoint, WrongLoraConfigJsonIsAnError) {
  TempDir t;
  const std::string p = t / "ckpt.h5";
  write_checkpoint_file(p, small_state());
  {
    hid_t fapl = ckpt_fapl();
    hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, fapl);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Adelete(f, "lora_config"), 0);
    ASSERT_GE(H5Adelete(f, "attrs_xxh64"), 0);
    put_attr(f, "lora_config", std::string(100000, '[') + std::string(100000, ']'));
    seal_attrs(f);  // a consistent checksum: only the JSON is hostile
    H5Fclose(f);
    H5Pclose(fapl);
  }
  EXPECT_ABM_ERROR(read_checkpoint(p), p, "lora_config", "nested deeper");
}

TEST(TokenCache, RoundTripAndDamage) {
  TempDir t;
  const std::string p = t / "c.tokens.h5";
  CacheKey k;
  k.data_path = "/x/data.jsonl";
  k.options = "o";
  k.data_hash = 11;
  k.tokenizer_hash = 12;
  TokenizedFile in;
  in.format = DataFormat::Tokens;
  for (int64_t i = 0; i < 4; ++i) {
    Example e;
    e.ids = {1, 10 + i, 2};
    e.labels = {kIgnore, 10 + i, 2};
    e.source = i + 1;
    in.examples.push_back(e);
  }
  write_token_cache(p, k, in);
  TokenizedFile out;
  std::string why;
  ASSERT_TRUE(read_token_cache(p, k, out, why)) << why;
  ASSERT_EQ(out.examples.size(), 4u);
  EXPECT_EQ(out.examples[3].ids, in.examples[3].ids);
  EXPECT_EQ(out.examples[3].labels, in.examples[3].labels);
  EXPECT_EQ(out.examples[3].source, 4);
  EXPECT_EQ(out.format, DataFormat::Tokens);

  CacheKey other = k;
  other.data_hash = 99;
  EXPECT_FALSE(read_token_cache(p, other, out, why));
  EXPECT_EQ(why, "made from other data");

  const std::string full = san::read_file(p);
  int refused = 0;
  for (size_t at = 0; at < full.size(); at += 61) {
    std::string bad = full;
    bad[at] = static_cast<char>(bad[at] ^ 0x33);
    write_file(t / "bad.tokens.h5", bad);
    TokenizedFile o;
    std::string w;
    if (!read_token_cache(t / "bad.tokens.h5", k, o, w)) {
      ++refused;
      EXPECT_FALSE(w.empty());
    } else {
      EXPECT_EQ(o.examples.size(), 4u);
    }
  }
  EXPECT_GT(refused, 0);
  write_file(t / "cut.tokens.h5", full.substr(0, full.size() / 2));
  EXPECT_FALSE(read_token_cache(t / "cut.tokens.h5", k, out, why));
  EXPECT_NE(why.find("unreadable"), std::string::npos) << why;
}

}  // namespace
}  // namespace abm
