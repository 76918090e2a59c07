// The checkpoint store (checkpoints/) and the stop flag (train/stop_signal.h), one process:
// round trips are bitwise, a writer killed with SIGKILL mid-write leaves the previous
// checkpoint in charge, damaged files are detected and skipped with a message, another
// base model or LoRA config is refused, rotation keeps K, signals only set a flag (also
// during a write), and `abmlora inspect` reports what a checkpoint holds.
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "checkpoints/checkpoint_dir.h"
#include "checkpoints/checkpoint_file.h"
#include "checkpoints/fingerprint.h"
#include "checkpoints/h5_io.h"
#include "checkpoints/resume.h"
#include "checkpoints/xxh64.h"
#include "lora/adapter_set.h"
#include "test_util.h"
#include "train/stop_signal.h"

namespace abm {
namespace {

using test::TempDir;

// --- fixtures ---------------------------------------------------------------------------

// A LoRA state of `layers` layers with q_proj and v_proj adapters of rank r on [out=hidden,
// in=hidden]; values depend on `seed`, moments are positive like real second moments.
CheckpointState make_state(int64_t step, uint64_t seed = 1, int64_t layers = 3, int64_t r = 4,
                           int64_t hidden = 24) {
  at::manual_seed(seed);
  CheckpointState s;
  s.step = step;
  s.epoch = step / 10;
  s.samples_seen = step * 8;
  s.tokens_seen = step * 1000 + 7;
  s.global_batch = 8;
  s.world_size = 2;
  s.config = "global-batch = 8\nlora-r = 4\nmodel = /models/tiny\nseed = 5\n";
  s.base_model = "/models/tiny";
  s.base_fingerprint = "0123456789abcdef";
  LoraConfig lc;
  lc.r = r;
  lc.dropout = 0.05;
  s.lora = lc;
  for (int64_t l = 0; l < layers; ++l)
    for (const char* kind : {"q_proj", "v_proj"}) {
      std::string m = lora_module_name(l, kind);
      s.trainable.emplace_back(m + ".lora_A", at::randn({r, hidden}));
      s.trainable.emplace_back(m + ".lora_B", at::randn({hidden, r}));
    }
  for (auto& [name, t] : s.trainable) {
    s.optimizer.exp_avg.push_back(at::randn_like(t) * 1e-3);
    s.optimizer.exp_avg_sq.push_back(at::rand_like(t) * 1e-6);
  }
  s.optimizer.step = step;
  s.optimizer.weight_decay = 0.01;
  s.scheduler.peak = 2e-4;
  s.scheduler.warmup = 5;
  s.scheduler.total = 100;
  s.sampler_seed = 5;
  at::Tensor gen = at::detail::getDefaultCPUGenerator().get_state();
  s.rng.emplace_back("torch_cpu", gen);
  AbmProvenance a;
  a.seed = 9;
  a.steps = 3;
  a.samples = {4, 1, 7};
  a.layers = {1, 2};
  a.loss = {0.9, 0.5, 0.25};
  a.accuracy = {0.75, 0.875};
  s.abm = a;
  return s;
}

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0;
}

void expect_same_tensors(const NamedTensors& a, const NamedTensors& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(same_bytes(a[i].second, b[i].second)) << a[i].first;
  }
}

void expect_same(const CheckpointState& a, const CheckpointState& b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.samples_seen, b.samples_seen);
  EXPECT_EQ(a.tokens_seen, b.tokens_seen);
  EXPECT_EQ(a.global_batch, b.global_batch);
  EXPECT_EQ(a.world_size, b.world_size);
  EXPECT_EQ(a.config, b.config);
  EXPECT_EQ(a.base_model, b.base_model);
  EXPECT_EQ(a.base_fingerprint, b.base_fingerprint);
  ASSERT_EQ(a.lora.has_value(), b.lora.has_value());
  if (a.lora) EXPECT_EQ(a.lora->to_json(), b.lora->to_json());
  expect_same_tensors(a.trainable, b.trainable);
  const OptimizerState &p = a.optimizer, &q = b.optimizer;
  EXPECT_EQ(p.step, q.step);
  EXPECT_EQ(p.beta1, q.beta1);
  EXPECT_EQ(p.beta2, q.beta2);
  EXPECT_EQ(p.eps, q.eps);
  EXPECT_EQ(p.weight_decay, q.weight_decay);
  ASSERT_EQ(p.exp_avg.size(), q.exp_avg.size());
  ASSERT_EQ(p.exp_avg_sq.size(), q.exp_avg_sq.size());
  for (size_t i = 0; i < p.exp_avg.size(); ++i) {
    EXPECT_TRUE(same_bytes(p.exp_avg[i], q.exp_avg[i])) << i;
    EXPECT_TRUE(same_bytes(p.exp_avg_sq[i], q.exp_avg_sq[i])) << i;
  }
  EXPECT_EQ(a.scheduler.kind, b.scheduler.kind);
  EXPECT_EQ(a.scheduler.peak, b.scheduler.peak);
  EXPECT_EQ(a.scheduler.warmup, b.scheduler.warmup);
  EXPECT_EQ(a.scheduler.total, b.scheduler.total);
  EXPECT_EQ(a.scheduler.min_ratio, b.scheduler.min_ratio);
  EXPECT_EQ(a.sampler_seed, b.sampler_seed);
  expect_same_tensors(a.rng, b.rng);
  ASSERT_EQ(a.abm.has_value(), b.abm.has_value());
  if (a.abm) {
    EXPECT_EQ(a.abm->seed, b.abm->seed);
    EXPECT_EQ(a.abm->margin, b.abm->margin);
    EXPECT_EQ(a.abm->steps, b.abm->steps);
    EXPECT_EQ(a.abm->scope, b.abm->scope);
    EXPECT_EQ(a.abm->teacher, b.abm->teacher);
    EXPECT_EQ(a.abm->samples, b.abm->samples);
    EXPECT_EQ(a.abm->layers, b.abm->layers);
    EXPECT_EQ(a.abm->loss, b.abm->loss);
    EXPECT_EQ(a.abm->accuracy, b.abm->accuracy);
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool file_exists(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0;
}

int64_t file_size(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 ? st.st_size : -1;
}

void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary);
  out << in.rdbuf();
}

void flip_byte(const std::string& path, int64_t offset, uint8_t mask = 0x10) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, offset), 1);
  b ^= mask;
  ASSERT_EQ(::pwrite(fd, &b, 1, offset), 1);
  ::close(fd);
}

// File offset of a contiguous dataset's first byte.
int64_t dataset_offset(const std::string& path, const std::string& dataset) {
  H5Id fapl(ckpt_fapl(), H5Pclose);
  H5Id f(ABM_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl)), H5Fclose);
  H5Id d(ABM_H5_CHECK(H5Dopen2(f, dataset.c_str(), H5P_DEFAULT)), H5Dclose);
  haddr_t off = H5Dget_offset(d);
  EXPECT_NE(off, HADDR_UNDEF);
  return static_cast<int64_t>(off);
}

// Waits until `path` exists and holds at least `bytes`; false on timeout.
bool wait_for_size(const std::string& path, int64_t bytes, double seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (file_size(path) >= bytes) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return false;
}

// Single-process stand-in for the Communicator (agree_to_stop needs one).
class SoloComm : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce(at::Tensor&, ReduceOp) override {}
  void broadcast(at::Tensor&, int) override {}
  at::Tensor all_gather(const at::Tensor& t) override { return t.flatten().clone(); }
  std::vector<at::Tensor> all_gather_v(const at::Tensor& t) override { return {t.flatten().clone()}; }
  void send(const at::Tensor&, int, int) override {}
  void recv(at::Tensor&, int, int) override {}
  void barrier() override {}
};

// --- XXH64 ------------------------------------------------------------------------------

TEST(Xxh64, MatchesReferenceVectors) {
  // From libxxhash 0.8.1 on bytes (i*7+3) % 251, seeds 0 and 12345.
  struct V {
    size_t n;
    uint64_t h0, h1;
  } vs[] = {{0, 0xef46db3751d8e999, 0x95584af7701f808d},   {1, 0x1f25c8d0bc1f4bb6, 0x9102786a712ff044},
            {3, 0x31d2363f52e564c9, 0xc6270ec97f034479},   {4, 0x9bb64b7d66ee9fda, 0x6a3181371bbc2026},
            {7, 0x9a7b149959ce60d8, 0x6e596c9ec41c4637},   {8, 0xdab99d95c6f90092, 0xbbcc4601a016b1e4},
            {31, 0xa2aa5f33cc4a6119, 0x8086bf60119a7308},  {32, 0x23c3c17ef790fd97, 0x244c3905cf320c2d},
            {33, 0x50a7cfc7ba588784, 0x1edc993457cf1fd8},  {100, 0x778e26df8290f456, 0xf4f741878ce62896},
            {1000, 0x021f7a7424085ea4, 0x736f460054931cf1}};
  std::vector<uint8_t> b(1000);
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t((i * 7 + 3) % 251);
  for (const V& v : vs) {
    EXPECT_EQ(xxh64(b.data(), v.n, 0), v.h0) << v.n;
    EXPECT_EQ(xxh64(b.data(), v.n, 12345), v.h1) << v.n;
  }
  // And against the installed library on more lengths and unaligned starts, when present.
  void* lib = ::dlopen("libxxhash.so.0", RTLD_NOW);
  if (!lib) GTEST_SKIP() << "libxxhash.so.0 not installed: checked the stored vectors only";
  auto ref = reinterpret_cast<unsigned long long (*)(const void*, size_t, unsigned long long)>(
      ::dlsym(lib, "XXH64"));
  ASSERT_TRUE(ref);
  for (size_t n = 0; n < 300; n += 7)
    for (size_t start : {0, 1, 3})
      EXPECT_EQ(xxh64(b.data() + start, n, n), ref(b.data() + start, n, n)) << n << "+" << start;
  ::dlclose(lib);
}

// --- round trips ------------------------------------------------------------------------

TEST(Checkpoint, RoundTripIsBitwise) {
  TempDir tmp;
  CheckpointState s = make_state(40);
  std::string path = write_checkpoint(tmp.path, s);
  EXPECT_EQ(path, tmp / "ckpt-00000040.h5");
  EXPECT_EQ(read_latest(tmp.path), "ckpt-00000040.h5");
  CheckpointState r = read_checkpoint(path);
  expect_same(s, r);
  EXPECT_EQ(r.format_version, kCheckpointVersion);
  EXPECT_EQ(r.tool_version, ABM_VERSION);
  EXPECT_EQ(r.created.size(), 20u) << r.created;  // 2025-01-02T03:04:05Z
}

TEST(Checkpoint, RoundTripFullParametersWithoutAbm) {
  TempDir tmp;
  CheckpointState s = make_state(3);
  s.lora.reset();
  s.abm.reset();
  s.rng.clear();
  s.trainable = {{"model.embed_tokens.weight", at::randn({10, 6}).to(at::kBFloat16)},
                 {"model.layers.0.mlp.up_proj.weight", at::randn({12, 6})},
                 {"model.norm.weight", at::ones({6})},
                 {"lm_head.weight", at::randn({10, 6})}};
  s.optimizer.exp_avg.clear();
  s.optimizer.exp_avg_sq.clear();
  for (auto& [n, t] : s.trainable) {
    s.optimizer.exp_avg.push_back(at::randn(t.sizes()));
    s.optimizer.exp_avg_sq.push_back(at::rand(t.sizes()));
  }
  expect_same(s, read_checkpoint(write_checkpoint(tmp.path, s)));
}

TEST(Checkpoint, OrderOfManyModulesIsKept) {
  // Layer 10 sorts before layer 2 by name: the file must keep the optimizer's order.
  TempDir tmp;
  CheckpointState s = make_state(1, 3, /*layers=*/12, /*r=*/2, /*hidden=*/4);
  CheckpointState r = read_checkpoint(write_checkpoint(tmp.path, s));
  ASSERT_EQ(r.trainable.size(), s.trainable.size());
  for (size_t i = 0; i < s.trainable.size(); ++i) EXPECT_EQ(r.trainable[i].first, s.trainable[i].first);
}

TEST(Checkpoint, NamesAndRotationKeepK) {
  EXPECT_EQ(checkpoint_name(7), "ckpt-00000007.h5");
  EXPECT_EQ(checkpoint_step("ckpt-00000123.h5"), 123);
  EXPECT_EQ(checkpoint_step("ckpt-00000123.h5.tmp"), -1);
  EXPECT_EQ(checkpoint_step("ckpt-12.h5"), -1);
  EXPECT_EQ(checkpoint_step("latest"), -1);
  TempDir tmp;
  for (int64_t step : {10, 20, 30, 40, 50}) write_checkpoint(tmp.path, make_state(step), 2);
  auto files = list_checkpoints(tmp.path);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].step, 50);
  EXPECT_EQ(files[1].step, 40);
  EXPECT_EQ(read_latest(tmp.path), "ckpt-00000050.h5");
  // keep <= 0 keeps everything
  TempDir all;
  for (int64_t step : {1, 2, 3}) write_checkpoint(all.path, make_state(step), 0);
  EXPECT_EQ(list_checkpoints(all.path).size(), 3u);
}

TEST(Checkpoint, TmpFilesAreNeverCheckpoints) {
  TempDir tmp;
  write_checkpoint(tmp.path, make_state(10));
  // A writer killed before its rename leaves a *.tmp — even a complete one is not used.
  copy_file(tmp / "ckpt-00000010.h5", tmp / "ckpt-00000020.h5.tmp");
  auto files = list_checkpoints(tmp.path);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].step, 10);
  EXPECT_EQ(find_resume(tmp.path).path, tmp / "ckpt-00000010.h5");
  // The next write removes stale temporaries.
  write_checkpoint(tmp.path, make_state(11));
  EXPECT_FALSE(file_exists(tmp / "ckpt-00000020.h5.tmp"));
}

TEST(Checkpoint, ResumeStartsAtLatestNotAtHigherSteps) {
  TempDir tmp;
  write_checkpoint(tmp.path, make_state(10));
  write_checkpoint(tmp.path, make_state(20));
  // A file above `latest`: from an abandoned continuation, or a writer killed between the
  // rename and the update of latest. Resume follows `latest`.
  copy_file(tmp / "ckpt-00000020.h5", tmp / "ckpt-00000090.h5");
  EXPECT_EQ(find_resume(tmp.path).path, tmp / "ckpt-00000020.h5");
  // Without `latest`, the newest file that verifies.
  ::unlink((tmp / "latest").c_str());
  EXPECT_EQ(find_resume(tmp.path).path, tmp / "ckpt-00000090.h5");
  // Empty directory: nothing to resume, not an error.
  TempDir empty;
  EXPECT_EQ(find_resume(empty.path).path, "");
  EXPECT_EQ(resolve_resume("auto", empty / "missing").path, "");
  EXPECT_NE(error_of([&] { resolve_resume(empty.path, "x"); }).find("no checkpoints"), std::string::npos);
}

// --- damage -----------------------------------------------------------------------------

TEST(Checkpoint, BitFlipInDataIsDetectedAndSkipped) {
  TempDir tmp;
  CheckpointState s10 = make_state(10);
  write_checkpoint(tmp.path, s10);
  std::string p20 = write_checkpoint(tmp.path, make_state(20, 2));
  int64_t off = dataset_offset(p20, "/adapter/model.layers.1.self_attn.v_proj/lora_B");
  flip_byte(p20, off + 13);
  std::string err = error_of([&] { read_checkpoint(p20); });
  EXPECT_NE(err.find("ckpt-00000020.h5: /adapter/model.layers.1.self_attn.v_proj/lora_B: checksum "
                     "mismatch"),
            std::string::npos)
      << err;
  ResumePoint p = find_resume(tmp.path);
  EXPECT_EQ(p.path, tmp / "ckpt-00000010.h5");
  ASSERT_EQ(p.skipped.size(), 1u);
  EXPECT_NE(p.skipped[0].find("checksum mismatch"), std::string::npos) << p.skipped[0];
  expect_same(s10, p.state);
  // The optimizer moments are checked too.
  std::string p30 = write_checkpoint(tmp.path, make_state(30, 3));
  flip_byte(p30, dataset_offset(p30, "/optimizer/model.layers.0.self_attn.q_proj/lora_A.exp_avg_sq") + 2, 1);
  EXPECT_NE(error_of([&] { read_checkpoint(p30); }).find("exp_avg_sq: checksum mismatch"), std::string::npos);
}

TEST(Checkpoint, TruncatedFileIsDetectedAndSkipped) {
  TempDir tmp;
  write_checkpoint(tmp.path, make_state(10));
  std::string p20 = write_checkpoint(tmp.path, make_state(20));
  for (double frac : {0.9, 0.5, 0.01}) {
    std::string cut = tmp / "cut.h5";
    copy_file(p20, cut);
    ASSERT_EQ(::truncate(cut.c_str(), int64_t(file_size(p20) * frac)), 0);
    std::string err = error_of([&] { read_checkpoint(cut); });
    EXPECT_NE(err.find("cut.h5: "), std::string::npos) << err;
    EXPECT_EQ(err.find("(no error)"), std::string::npos);
    std::printf("  truncated to %.0f%%: %s\n", frac * 100, err.c_str());
  }
  ASSERT_EQ(::truncate(p20.c_str(), file_size(p20) / 2), 0);
  ResumePoint p = find_resume(tmp.path);
  EXPECT_EQ(p.path, tmp / "ckpt-00000010.h5");
  ASSERT_EQ(p.skipped.size(), 1u);
  EXPECT_NE(p.skipped[0].find("ckpt-00000020.h5"), std::string::npos);
  // Nothing valid left: a clear error rather than silently starting over.
  ASSERT_EQ(::truncate((tmp / "ckpt-00000010.h5").c_str(), 100), 0);
  std::string err = error_of([&] { find_resume(tmp.path); });
  EXPECT_NE(err.find("no valid checkpoint to resume from (2 damaged"), std::string::npos) << err;
}

TEST(Checkpoint, NotACheckpoint) {
  TempDir tmp;
  {
    std::ofstream(tmp / "junk.h5") << "this is not HDF5";
  }
  EXPECT_NE(error_of([&] { read_checkpoint(tmp / "junk.h5"); }).find("not a readable HDF5 file"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_checkpoint(tmp / "none.h5"); }).find("none.h5: cannot open"),
            std::string::npos);
}

// Every single-bit flip anywhere in the file is either detected or harmless: the read
// fails with a message, or returns exactly the state that was written.
TEST(Checkpoint, AnyFlippedBitIsDetectedOrHarmless) {
  TempDir tmp;
  CheckpointState s = make_state(5, 7, 2, 2, 8);
  std::string good = write_checkpoint(tmp.path, s);
  const int64_t size = file_size(good);
  int detected = 0, harmless = 0;
  const int64_t stride = std::max<int64_t>(1, size / 1500);
  for (int64_t off = 0; off < size; off += stride) {
    std::string bad = tmp / "bad.h5";
    copy_file(good, bad);
    flip_byte(bad, off, uint8_t(1u << (off % 8)));
    try {
      CheckpointState r = read_checkpoint(bad);
      expect_same(s, r);
      if (::testing::Test::HasFailure()) {
        ADD_FAILURE() << "silent corruption from a flip at byte " << off;
        return;
      }
      ++harmless;
    } catch (const Error&) {
      ++detected;
      EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0) << "a failed read left HDF5 ids open";
    }
  }
  std::printf("  %lld-byte file, %d flips: %d detected, %d in unused bytes (read back exact)\n",
              (long long)size, detected + harmless, detected, harmless);
  EXPECT_GT(detected, harmless);
}

// --- a writer killed mid-write ----------------------------------------------------------

// A state of about `mib` MiB (trainable + two moments), big enough that a write takes a while.
CheckpointState big_state(int64_t step, int64_t mib) {
  CheckpointState s = make_state(step, 4, 1, 4, 8);
  const int64_t cols = mib * 1024 * 1024 / 4 / 3 / 2 / 16;  // 2 tensors [16, cols], x3
  s.trainable = {{"model.layers.0.mlp.down_proj.lora_A", at::rand({16, cols})},
                 {"model.layers.0.mlp.down_proj.lora_B", at::rand({cols, 16})}};
  s.optimizer.exp_avg = {at::rand({16, cols}), at::rand({cols, 16})};
  s.optimizer.exp_avg_sq = {at::rand({16, cols}), at::rand({cols, 16})};
  return s;
}

TEST(Checkpoint, KillDuringWriteKeepsThePreviousCheckpoint) {
  TempDir tmp;
  CheckpointState s10 = make_state(10);
  write_checkpoint(tmp.path, s10);
  CheckpointState big = big_state(20, 384);  // built before fork: the child only writes
  const std::string tmpfile = tmp / "ckpt-00000020.h5.tmp";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      write_checkpoint(tmp.path, big);
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0);
  }
  bool started = wait_for_size(tmpfile, 8 << 20, 120);
  int st = 0;
  bool still_running = ::waitpid(child, &st, WNOHANG) == 0;
  ::kill(child, SIGKILL);
  ::waitpid(child, &st, 0);
  ASSERT_TRUE(started) << "the writer never produced " << tmpfile;
  ASSERT_TRUE(still_running && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
      << "the writer finished before it could be killed (make the state bigger)";
  std::printf("  killed the writer with %.1f MiB of %.1f MiB written\n",
              file_size(tmpfile) / 1048576.0, state_bytes(big) / 1048576.0);
  EXPECT_TRUE(file_exists(tmpfile));
  EXPECT_FALSE(file_exists(tmp / "ckpt-00000020.h5"));
  EXPECT_EQ(read_latest(tmp.path), "ckpt-00000010.h5");
  ResumePoint p = find_resume(tmp.path);
  EXPECT_EQ(p.path, tmp / "ckpt-00000010.h5");
  EXPECT_TRUE(p.skipped.empty());
  expect_same(s10, p.state);
}

// --- compatibility ----------------------------------------------------------------------

TEST(Checkpoint, IncompatibleRunsAreRefused) {
  CheckpointState s = make_state(10);
  ResumeExpect now;
  now.base_model = "/models/tiny";
  now.base_fingerprint = s.base_fingerprint;
  now.lora = *s.lora;
  now.global_batch = 8;
  now.sampler_seed = 5;
  EXPECT_NO_THROW(check_compatible(s, now, "C.h5"));

  ResumeExpect other = now;
  other.base_model = "/models/other";
  other.base_fingerprint = "fedcba9876543210";
  EXPECT_EQ(error_of([&] { check_compatible(s, other, "C.h5"); }),
            "C.h5: cannot resume: it was made for another base model (checkpoint: /models/tiny "
            "fingerprint 0123456789abcdef; now: /models/other fingerprint fedcba9876543210)");
  other = now;
  other.lora->r = 16;
  EXPECT_EQ(error_of([&] { check_compatible(s, other, "C.h5"); }),
            "C.h5: cannot resume: LoRA rank differs (checkpoint --lora-r 4, now 16)");
  other = now;
  other.lora->targets = {"all-linear"};
  EXPECT_NE(error_of([&] { check_compatible(s, other, "C.h5"); }).find("LoRA targets differ"),
            std::string::npos);
  other = now;
  other.lora.reset();
  EXPECT_NE(error_of([&] { check_compatible(s, other, "C.h5"); }).find("this run trains all weights"),
            std::string::npos);
  other = now;
  other.global_batch = 16;
  EXPECT_NE(error_of([&] { check_compatible(s, other, "C.h5"); }).find("global batch differs"),
            std::string::npos);
  other = now;
  other.sampler_seed = 6;
  EXPECT_NE(error_of([&] { check_compatible(s, other, "C.h5"); }).find("data seed differs"),
            std::string::npos);
}

// A tiny model directory: config.json + model.safetensors.
void write_model(const std::string& dir, float w0, const std::string& extra_config = "") {
  ::mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/config.json")
      << "{\"hidden_size\": 8, \"num_hidden_layers\": 1, \"vocab_size\": 16" << extra_config << "}";
  at::Tensor emb = at::arange(128, at::kFloat).reshape({16, 8});
  emb[0][0] = w0;
  save_safetensors(dir + "/model.safetensors",
                   {{"model.embed_tokens.weight", emb}, {"model.norm.weight", at::ones({8})}});
}

TEST(Checkpoint, ModelFingerprint) {
  TempDir tmp;
  write_model(tmp / "a", 0);
  write_model(tmp / "b", 0, ", \"_name_or_path\": \"x\", \"transformers_version\": \"4.36\"");
  write_model(tmp / "c", 1);  // one weight differs (in the sampled first bytes)
  write_model(tmp / "d", 0, ", \"rms_norm_eps\": 1e-6");
  std::string a = model_fingerprint(tmp / "a");
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a, model_fingerprint(tmp / "a"));
  EXPECT_EQ(a, model_fingerprint(tmp / "b"));  // provenance-only keys do not count
  EXPECT_NE(a, model_fingerprint(tmp / "c"));
  EXPECT_NE(a, model_fingerprint(tmp / "d"));
  EXPECT_NE(error_of([&] { model_fingerprint(tmp / "none"); }).find("config.json: cannot open"),
            std::string::npos);
}

// --- stop signals -----------------------------------------------------------------------

TEST(StopSignal, RaisedSignalsSetTheFlagOnly) {
  install_stop_handlers();
  SoloComm comm;
  TimeBudget none;
  clear_stop_signal();
  EXPECT_FALSE(agree_to_stop(comm, none).stop);
  for (int sig : {SIGUSR1, SIGTERM, SIGINT}) {
    clear_stop_signal();
    ASSERT_EQ(::raise(sig), 0);  // the process survives: the handler only sets the flag
    EXPECT_EQ(stop_signal_received(), sig);
    StopDecision d = agree_to_stop(comm, none);
    EXPECT_TRUE(d.stop);
    EXPECT_EQ(d.reason, signal_name(sig));
  }
  clear_stop_signal();
  ::raise(SIGTERM);
  ::raise(SIGUSR1);  // a second signal keeps the first one's name
  EXPECT_EQ(stop_signal_received(), SIGTERM);
  clear_stop_signal();
  restore_default_handlers();
}

TEST(StopSignal, TimeBudget) {
  using C = TimeBudget::Clock;
  C::time_point t0 = C::now();
  TimeBudget b(1.0, /*margin_s=*/5, t0);  // 60 s
  EXPECT_TRUE(b.enabled());
  b.record_step(10);
  b.record_step(4);  // the slowest step counts
  EXPECT_DOUBLE_EQ(b.needed_s(), 2 * 10 + 10 + 5);  // no checkpoint measured: one step
  b.record_checkpoint(3);
  EXPECT_DOUBLE_EQ(b.needed_s(), 2 * 10 + 3 + 5);
  EXPECT_FALSE(b.nearly_spent(t0 + std::chrono::seconds(30)));  // 30 s left >= 28
  EXPECT_TRUE(b.nearly_spent(t0 + std::chrono::seconds(33)));   // 27 s left < 28
  TimeBudget off(0);
  EXPECT_FALSE(off.nearly_spent(t0 + std::chrono::hours(1000)));
  SoloComm comm;
  clear_stop_signal();
  TimeBudget spent(1e-6, 0);
  spent.record_step(1);
  StopDecision d = agree_to_stop(comm, spent);
  EXPECT_TRUE(d.stop);
  EXPECT_EQ(d.reason.rfind("time budget (", 0), 0u) << d.reason;
}

// Signals arriving while a checkpoint is being written: the write completes, verifies, and
// the process reports the first signal with the requeue exit code.
TEST(StopSignal, SignalsDuringAWriteDoNotCorruptIt) {
  TempDir tmp;
  CheckpointState big = big_state(30, 192);
  const std::string tmpfile = tmp / "ckpt-00000030.h5.tmp";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    install_stop_handlers();
    try {
      write_checkpoint(tmp.path, big);
    } catch (...) {
      ::_exit(1);
    }
    // Signals pending together are delivered lowest number first (SIGINT before SIGUSR1),
    // so which one comes first depends on scheduling: any of them means "stop".
    ::_exit(stop_signal_received() != 0 ? kExitRequeue : 0);
  }
  ASSERT_TRUE(wait_for_size(tmpfile, 4 << 20, 120));
  int sent = 0;
  for (int sig : {SIGUSR1, SIGTERM, SIGINT, SIGUSR1, SIGTERM})
    if (file_exists(tmpfile)) {
      ::kill(child, sig);
      ++sent;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  int st = 0;
  ::waitpid(child, &st, 0);
  std::printf("  %d signals sent during the write\n", sent);
  EXPECT_GE(sent, 2);
  ASSERT_TRUE(WIFEXITED(st)) << "the writer died from a signal";
  EXPECT_EQ(WEXITSTATUS(st), kExitRequeue);
  CheckpointState r = read_checkpoint(tmp / "ckpt-00000030.h5");
  expect_same(big, r);
}

// --- abmlora inspect --------------------------------------------------------------------

TEST(Inspect, CheckpointFileAndDirectory) {
  TempDir tmp;
  const std::string dir = tmp / "run/checkpoints";
  write_checkpoint(dir, make_state(10));
  std::string p20 = write_checkpoint(dir, make_state(20));
  const std::string bin = ABM_BINARY;
  test::RunResult r = test::run(bin + " inspect " + p20);  // the short summary
  EXPECT_EQ(r.status, 0) << r.output;
  for (const char* want : {"step 20, epoch 2, samples seen 160", "base model /models/tiny",
                           "model.layers.1.self_attn.v_proj  lora_A [4, 24]  lora_B [24, 4]",
                           "... 2 more modules (--verbose lists all)", "config: 4 options",
                           "abm: seed 9", "verifies: yes"})
    EXPECT_NE(r.output.find(want), std::string::npos) << want << "\n" << r.output;
  r = test::run(bin + " inspect --verbose " + p20);
  EXPECT_EQ(r.status, 0) << r.output;
  for (const char* want : {"model.layers.2.self_attn.v_proj  lora_A [4, 24]  lora_B [24, 4]",
                           "lora-r = 4", "verifies: yes"})
    EXPECT_NE(r.output.find(want), std::string::npos) << want << "\n" << r.output;
  flip_byte(p20, dataset_offset(p20, "/adapter/model.layers.0.self_attn.q_proj/lora_A") + 1);
  r = test::run(bin + " inspect " + p20);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("verifies: no ("), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step: 20"), std::string::npos) << r.output;  // what is still readable
  r = test::run(bin + " inspect " + (tmp / "run"));  // a run directory
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ckpt-00000020.h5  step 20"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--resume auto would take: " + dir + "/ckpt-00000010.h5"),
            std::string::npos)
      << r.output;
}

// --- measurement (ABM_CKPT_BENCH=1): LLaMA-2-7B-sized LoRA state vs raw disk speed -------

TEST(CheckpointBench, SevenBLoraStateVsDisk) {
  if (!std::getenv("ABM_CKPT_BENCH")) GTEST_SKIP() << "set ABM_CKPT_BENCH=1 to measure";
  const char* where = std::getenv("ABM_CKPT_BENCH_DIR");
  TempDir tmp;
  std::string dir = where ? std::string(where) : tmp.path;
  // r = 16 on all seven projections of 32 layers, hidden 4096, intermediate 11008.
  CheckpointState s = make_state(100, 1, 0);
  s.abm.reset();
  const int64_t r = 16, h = 4096, im = 11008;
  for (int64_t l = 0; l < 32; ++l)
    for (const std::string& kind : lora_module_kinds()) {
      int64_t in = kind == "down_proj" ? im : h, out = kind == "gate_proj" || kind == "up_proj" ? im : h;
      std::string m = lora_module_name(l, kind);
      s.trainable.emplace_back(m + ".lora_A", at::randn({r, in}));
      s.trainable.emplace_back(m + ".lora_B", at::randn({out, r}));
      for (int k = 0; k < 2; ++k) {
        s.optimizer.exp_avg.push_back(at::randn({k ? out : r, k ? r : in}));
        s.optimizer.exp_avg_sq.push_back(at::rand({k ? out : r, k ? r : in}));
      }
    }
  int64_t params = 0;
  for (auto& [n, t] : s.trainable) params += t.numel();
  auto secs = [](auto f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::string path;
  double w = secs([&] { path = write_checkpoint(dir, s, 1); });
  double size = double(file_size(path));
  // Read from disk, not the page cache, when we may drop it (root); else say so.
  bool cold = test::run("sync && echo 1 > /proc/sys/vm/drop_caches").status == 0;
  double rd = secs([&] { read_checkpoint(path); });
  double warm = secs([&] { read_checkpoint(path); });
  test::RunResult dd = test::run("dd if=/dev/zero of=" + dir + "/dd.bin bs=4M count=" +
                                 std::to_string(int64_t(size) / (4 << 20) + 1) +
                                 " conv=fsync 2>&1 | tail -1; rm -f " + dir + "/dd.bin");
  std::printf("  7B LoRA r=16 all-linear: %.1f M params, file %.1f MiB\n", params / 1e6, size / 1048576);
  std::printf("  write (tmp+fsync+rename+latest): %.2f s = %.0f MiB/s\n", w, size / 1048576 / w);
  std::printf("  read + verify (%s cache): %.2f s = %.0f MiB/s; again (warm): %.2f s\n",
              cold ? "cold" : "warm", rd, size / 1048576 / rd, warm);
  std::printf("  raw disk write (dd conv=fsync, same size): %s", dd.output.c_str());
  if (cold) {
    test::RunResult rd_dd = test::run("sync && echo 1 > /proc/sys/vm/drop_caches && dd if=" + path +
                                      " of=/dev/null bs=4M 2>&1 | tail -1");
    std::printf("  raw disk read (dd of the checkpoint, cold): %s", rd_dd.output.c_str());
  }
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace abm
