// model/safetensors.h: good files read back exactly; truncated files, overflowing shapes,
// bad offsets, bad dtypes and hostile headers are one abm::Error naming the file.
#include <torch/torch.h>

#include "model/safetensors.h"
#include "san_util.h"

namespace abm {
namespace {

using san::safetensors_bytes;
using san::TempDir;
using san::write_file;

std::string f32_bytes(std::initializer_list<float> v) {
  return std::string(reinterpret_cast<const char*>(std::data(v)), v.size() * 4);
}

TEST(Safetensors, WriterRoundTrip) {
  TempDir t;
  const std::string p = t / "m.safetensors";
  at::Tensor a = at::arange(6, at::kFloat).reshape({2, 3});
  at::Tensor b = at::tensor({7, -8, 9, 10}, at::kLong);
  at::Tensor c = at::tensor({1.5f, -2.25f, 3.0f}).to(at::kBFloat16);
  save_safetensors(p, {{"a", a}, {"b", b}, {"c", c}}, {{"format", "pt"}});
  SafetensorsFile f(p);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(f.entry("a").dtype, "F32");
  EXPECT_EQ(f.entry("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.entry("b").dtype, "I64");
  EXPECT_EQ(f.entry("c").dtype, "BF16");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_TRUE(at::equal(f.read("a", at::kFloat), a));
  EXPECT_TRUE(at::equal(f.read("b", at::kLong), b));
  EXPECT_TRUE(at::equal(f.read("c", at::kFloat), c.to(at::kFloat)));
  EXPECT_ABM_ERROR(f.entry("zzz"), p, "tensor zzz not found");
}

TEST(Safetensors, HandWrittenHeader) {
  TempDir t;
  const std::string p = t / "h.safetensors";
  write_file(p, safetensors_bytes(
                    R"({"__metadata__":{"n":"1","deep":{"x":[1]}},)"
                    R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("e":{"dtype":"U8","shape":[0],"data_offsets":[8,8]}})",
                    f32_bytes({0.5f, -4.0f})));
  SafetensorsFile f(p);
  EXPECT_EQ(f.metadata().at("n"), "1");
  EXPECT_EQ(f.metadata().at("deep"), R"({"x":[1]})");  // non-string metadata kept as JSON
  EXPECT_TRUE(at::equal(f.read("w", at::kFloat), at::tensor({0.5f, -4.0f})));
  EXPECT_EQ(f.read("e", at::kFloat).numel(), 0);
}

TEST(Safetensors, TruncatedFiles) {
  TempDir t;
  const std::string p = t / "t.safetensors";
  write_file(p, "");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "truncated safetensors file (0 bytes");
  write_file(p, std::string("\x10\0\0", 3));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "truncated safetensors file (3 bytes");
  // Header length past the end, including lengths that would wrap size_t arithmetic.
  write_file(p, safetensors_bytes("{}", "").substr(0, 8) + "{}");
  EXPECT_NO_THROW(SafetensorsFile{p});
  std::string big(8, '\xff');
  write_file(p, big + "{}");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "header length 18446744073709551615 runs past end");
  uint64_t n = 100;
  write_file(p, std::string(reinterpret_cast<const char*>(&n), 8) + "{}");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "header length 100 runs past end of file (10 bytes)");
  // Data section shorter than the header promises.
  write_file(p, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                                  f32_bytes({1, 2})));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "truncated: tensor w ends at byte 16", "has only 8 bytes");
  // A real file cut short.
  save_safetensors(t / "full.safetensors", {{"x", at::ones({64})}});
  std::string full = san::read_file(t / "full.safetensors");
  write_file(p, full.substr(0, full.size() - 1));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "truncated: tensor x");
  write_file(p, full.substr(0, 20));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "runs past end of file");
}

TEST(Safetensors, OverflowingShapes) {
  TempDir t;
  const std::string p = t / "o.safetensors";
  // The issue's case: 2^62 + 1 elements of F32 "stored" in 4 bytes (wraps to 4 bytes).
  write_file(p, safetensors_bytes(
                    R"({"w":{"dtype":"F32","shape":[4611686018427387905],"data_offsets":[0,4]}})",
                    f32_bytes({1})));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w", "do not match shape [4611686018427387905]");
  // Product of dimensions wrapping to 0 and to a small number.
  write_file(p, safetensors_bytes(
                    R"({"w":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w", "do not match shape");
  write_file(p, safetensors_bytes(
                    R"({"w":{"dtype":"I64","shape":[2305843009213693952,1],"data_offsets":[0,0]}})", ""));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w", "do not match shape");
  // A dimension above int64 (nlohmann stores it unsigned) and a negative one.
  write_file(p, safetensors_bytes(
                    R"({"w":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,1]}})", "x"));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w");
  write_file(p, safetensors_bytes(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", "x"));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w has a negative dimension");
}

TEST(Safetensors, BadEntries) {
  TempDir t;
  const std::string p = t / "b.safetensors";
  auto one = [&](const std::string& entry, const std::string& data = "abcd") {
    write_file(p, safetensors_bytes("{\"w\":" + entry + "}", data));
  };
  one(R"({"dtype":"F32","shape":[1],"data_offsets":[4,0]})");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w: data_offsets [4, 0)");
  one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "data_offsets needs 2 values");
  one(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "data_offsets needs 2 values");
  one(R"({"dtype":"Q4","shape":[1],"data_offsets":[0,4]})");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "unsupported dtype Q4");
  one(R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w: malformed header entry");
  one(R"({"shape":[1],"data_offsets":[0,4]})");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w: malformed header entry");
  one(R"({"dtype":"F32","shape":[1],"data_offsets":[-1,3]})");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w");
  one(R"({"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,0]})");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w");
  one("7");
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "tensor w");
  write_file(p, safetensors_bytes("[1,2]", ""));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "header is not a JSON object");
  write_file(p, safetensors_bytes("{\"w\": ", ""));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "not valid JSON");
}

TEST(Safetensors, DeepMetadataIsAnErrorNamingTheFile) {
  TempDir t;
  const std::string p = t / "deep.safetensors";
  write_file(p, safetensors_bytes("{\"__metadata__\": {\"x\": " + san::nested(100000) + "}}", ""));
  EXPECT_ABM_ERROR(SafetensorsFile{p}, p, "nested deeper than 64 levels");
}

TEST(Safetensors, NotARegularFile) {
  TempDir t;
  EXPECT_ABM_ERROR(SafetensorsFile{t.path}, t.path, "not a regular file");
  EXPECT_ABM_ERROR(SafetensorsFile{"/dev/zero"}, "/dev/zero", "not a regular file");
  EXPECT_ABM_ERROR(SafetensorsFile{t / "missing"}, t / "missing", "cannot open");
}

TEST(TensorStore, HostileIndex) {
  TempDir t;
  write_file(t / "model.safetensors.index.json", "{\"weight_map\": " + san::nested(1000) + "}");
  EXPECT_ABM_ERROR(TensorStore{t.path}, "model.safetensors.index.json", "nested deeper");
  write_file(t / "model.safetensors.index.json", R"({"weight_map": {"w": 3}})");
  EXPECT_ABM_ERROR(TensorStore{t.path}, "model.safetensors.index.json", "malformed index");
  write_file(t / "model.safetensors.index.json", R"({"weight_map": {"w": "nope.safetensors"}})");
  EXPECT_ABM_ERROR(TensorStore{t.path}, "shard nope.safetensors", "does not exist");
  EXPECT_ABM_ERROR(TensorStore{t / "nodir"}, "nodir", "no such model directory");
}

TEST(TensorStore, ShapeMismatchNamesBothShapes) {
  TempDir t;
  save_safetensors(t / "model.safetensors", {{"w", at::ones({2, 3})}});
  TensorStore s(t.path);
  EXPECT_TRUE(at::equal(s.read("w", {2, 3}, at::kFloat), at::ones({2, 3})));
  EXPECT_ABM_ERROR(s.read("w", {3, 2}, at::kFloat), "model.safetensors", "tensor w has shape [2, 3]",
                   "expected [3, 2]");
}

}  // namespace
}  // namespace abm
