// core/json_text.h and core/fs.h: the depth limit every JSON document goes through, the
// small-file reader and the regular-file check.
#include <sys/stat.h>

#include "core/fs.h"
#include "core/json_text.h"
#include "san_util.h"

namespace abm {
namespace {

using san::nested;
using san::TempDir;

TEST(JsonText, ParsesValues) {
  auto j = parse_json(R"({"a": [1, 2.5, "x", null, true], "b": {"c": -3}})", "doc.json");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["a"][0].get<int>(), 1);
  EXPECT_DOUBLE_EQ(j["a"][1].get<double>(), 2.5);
  EXPECT_EQ(j["a"][2].get<std::string>(), "x");
  EXPECT_TRUE(j["a"][3].is_null());
  EXPECT_TRUE(j["a"][4].get<bool>());
  EXPECT_EQ(j["b"]["c"].get<int>(), -3);
}

TEST(JsonText, DepthLimitIsExact) {
  EXPECT_NO_THROW(parse_json(nested(kMaxJsonDepth), "ok.json"));
  EXPECT_ABM_ERROR(parse_json(nested(kMaxJsonDepth + 1), "deep.json"), "deep.json",
                   "nested deeper than 64 levels");
}

TEST(JsonText, HundredThousandLevelsAreAnErrorNotACrash) {
  EXPECT_ABM_ERROR(parse_json(nested(100000), "arrays.json"), "arrays.json", "nested deeper");
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(100000, '}');
  EXPECT_ABM_ERROR(parse_json(objects, "objects.json"), "objects.json", "nested deeper");
  // Deep inside an otherwise valid document, as in the issue's config.json.
  EXPECT_ABM_ERROR(parse_json("{\"rms_norm_eps\": " + nested(100000) + "}", "cfg.json"),
                   "cfg.json", "nested deeper");
  // Unbalanced (never closed): still a clean error.
  EXPECT_ABM_ERROR(parse_json(std::string(100000, '['), "open.json"), "open.json", "nested deeper");
}

TEST(JsonText, BracketsInStringsDoNotCount) {
  std::string s = "[\"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"]";
  auto j = parse_json(s, "str.json");
  EXPECT_EQ(j[0].get<std::string>().size(), 2001u);
  // An escaped quote does not end the string: the brackets after it are still inside.
  EXPECT_NO_THROW(parse_json("[\"\\\\\", " + nested(60) + "]", "esc.json"));
  // Closing brackets beyond the opening ones cannot make room for deeper nesting.
  EXPECT_ABM_ERROR(parse_json("\"]]]]\" " + nested(65), "x.json"), "x.json");
  EXPECT_ABM_ERROR(check_json_depth(std::string(100, ']') + nested(65), "y.json"), "y.json",
                   "nested deeper");
}

TEST(JsonText, SyntaxErrorsNameTheDocument) {
  EXPECT_ABM_ERROR(parse_json("{\"a\": }", "bad.json"), "bad.json: not valid JSON");
  EXPECT_ABM_ERROR(parse_json("", "empty.json"), "empty.json: not valid JSON");
  EXPECT_ABM_ERROR(parse_json("[1, 2", "short.json"), "short.json: not valid JSON");
  EXPECT_ABM_ERROR(parse_json(std::string("{\"a\":\0}", 7), "nul.json"), "nul.json");
  EXPECT_ABM_ERROR(parse_json("\"\xff\xfe\"", "utf8.json"), "utf8.json: not valid JSON");
}

TEST(ReadSmallFile, ReadsAndRefuses) {
  TempDir t;
  san::write_file(t / "a.json", "{\"k\": 1}");
  EXPECT_EQ(read_small_file(t / "a.json"), "{\"k\": 1}");
  EXPECT_ABM_ERROR(read_small_file(t / "missing.json"), t / "missing.json", "cannot open");
  EXPECT_ABM_ERROR(read_small_file(t.path), t.path, "not a regular file");
  EXPECT_ABM_ERROR(read_small_file("/dev/zero"), "/dev/zero", "not a regular file");
  EXPECT_ABM_ERROR(read_small_file(t / "a.json", 4), t / "a.json", "more than the 4");
  ASSERT_EQ(::mkfifo((t / "fifo").c_str(), 0600), 0);
  EXPECT_ABM_ERROR(read_small_file(t / "fifo"), t / "fifo", "not a regular file");
}

TEST(RequireRegularFile, RefusesDevicesDirectoriesFifos) {
  TempDir t;
  san::write_file(t / "f", "x");
  EXPECT_NO_THROW(require_regular_file(t / "f"));
  EXPECT_ABM_ERROR(require_regular_file("/dev/zero"), "/dev/zero", "not a regular file");
  EXPECT_ABM_ERROR(require_regular_file(t.path), t.path, "not a regular file");
  EXPECT_ABM_ERROR(require_regular_file(t / "nope"), t / "nope", "cannot open");
  ASSERT_EQ(::mkfifo((t / "fifo").c_str(), 0600), 0);
  EXPECT_ABM_ERROR(require_regular_file(t / "fifo"), t / "fifo", "not a regular file");
}

}  // namespace
}  // namespace abm
