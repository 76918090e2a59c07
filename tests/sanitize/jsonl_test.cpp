// data/jsonl_reader.h: every record format reads to the right fields; bad lines are one
// abm::Error "FILE:LINE: ..." (or "FILE: record N" in a JSON array); non-regular files
// are refused without reading them.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include "data/jsonl_reader.h"
#include "san_util.h"

namespace abm {
namespace {

using san::TempDir;
using san::write_file;

TEST(Jsonl, Alpaca) {
  TempDir t;
  write_file(t / "d.jsonl",
             "{\"instruction\":\"Add.\",\"input\":\"1 2\",\"output\":\"3\"}\n"
             "\n"
             "{\"instruction\":\"Say hi.\",\"input\":null,\"output\":\"hi\"}\r\n");
  Records r = read_records(t / "d.jsonl");
  EXPECT_EQ(r.format, DataFormat::Alpaca);
  EXPECT_FALSE(r.json_array);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0].instruction, "Add.");
  EXPECT_EQ(r.records[0].input, "1 2");
  EXPECT_EQ(r.records[0].output, "3");
  EXPECT_EQ(r.records[0].where, t / "d.jsonl:1");
  EXPECT_EQ(r.records[1].source, 3);
  EXPECT_EQ(r.records[1].input, "");
}

TEST(Jsonl, ChatTokensTextAndArray) {
  TempDir t;
  write_file(t / "c.jsonl",
             R"({"conversations":[{"from":"system","value":"s"},{"from":"human","value":"u"},{"from":"gpt","value":"a"}]})"
             "\n");
  Records c = read_records(t / "c.jsonl");
  EXPECT_EQ(c.format, DataFormat::Chat);
  ASSERT_EQ(c.records[0].messages.size(), 3u);
  EXPECT_EQ(c.records[0].messages[1].role, "user");
  EXPECT_EQ(c.records[0].messages[2].role, "assistant");
  EXPECT_EQ(c.records[0].messages[2].content, "a");

  write_file(t / "k.jsonl", R"({"input_ids":[1,5,9],"labels":[-100,5,9]})" "\n");
  Records k = read_records(t / "k.jsonl");
  EXPECT_EQ(k.format, DataFormat::Tokens);
  EXPECT_EQ(k.records[0].ids, (std::vector<int64_t>{1, 5, 9}));
  EXPECT_EQ(k.records[0].labels, (std::vector<int64_t>{-100, 5, 9}));

  write_file(t / "p.txt", "first para\nline two\n\n\nsecond\n");
  Records p = read_records(t / "p.txt");
  EXPECT_EQ(p.format, DataFormat::Text);
  ASSERT_EQ(p.records.size(), 2u);
  EXPECT_EQ(p.records[0].text, "first para\nline two");
  EXPECT_EQ(p.records[1].source, 5);

  write_file(t / "a.json", R"(  [{"text":"x"},{"text":"y"}])");
  Records a = read_records(t / "a.json");
  EXPECT_TRUE(a.json_array);
  EXPECT_EQ(a.records[1].where, t / "a.json: record 2");
  EXPECT_EQ(a.records[1].text, "y");
}

TEST(Jsonl, BadLinesNameFileAndLine) {
  TempDir t;
  const std::string p = t / "d.jsonl";
  const std::string good = "{\"instruction\":\"i\",\"output\":\"o\"}\n";
  write_file(p, good + "{\"instruction\":\"i\",\"output\":}\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":2: bad JSON at column");
  write_file(p, good + good + "{\"instruction\":" + san::nested(100000) + "}\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":3:", "nested deeper");
  write_file(p, good + "{\"instruction\":\"i\"}\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":2: missing field \"output\" (alpaca format)");
  write_file(p, good + "{\"instruction\":5,\"output\":\"o\"}\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":2: field \"instruction\" must be a string");
  write_file(p, good + "[1,2]\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":2: expected a JSON object");
  write_file(p, "{\"foo\":1}\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":1: cannot detect the data format");
  write_file(p, "{\"input_ids\":[1,-2]}\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":1: input_ids[1] = -2 is negative");
  write_file(p, "{\"input_ids\":[1,2],\"labels\":[1]}\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":1: \"labels\" has 1 entries");
  write_file(p, "{\"input_ids\":[1,2.5]}\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":1: input_ids[1] must be an integer");
  write_file(p, "{\"input_ids\":[]}\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":1: \"input_ids\" is empty");
  write_file(p, R"({"messages":[{"role":"assistant","content":"a"}]})" "\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":1: messages[0]: expected role user");
  write_file(p, R"({"messages":[{"role":"robot","content":"a"}]})" "\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":1: messages[0]: unknown role \"robot\"");
  write_file(p, R"({"messages":[]})" "\n");
  EXPECT_ABM_ERROR(read_records(p), p + ":1: \"messages\" is empty");
  write_file(p, "\n \n\t\n");
  EXPECT_ABM_ERROR(read_records(p), p + ": empty dataset");
  write_file(p, std::string("{\"text\":\"a\0b\"}\n", 15));
  EXPECT_ABM_ERROR(read_records(p), p + ":1: bad JSON");
}

TEST(Jsonl, BadJsonArrayNamesTheRecord) {
  TempDir t;
  const std::string p = t / "a.json";
  write_file(p, R"([{"text":"x"},{"text":7}])");
  EXPECT_ABM_ERROR(read_records(p), p + ": record 2: field \"text\" must be a string");
  write_file(p, "[" + san::nested(100000) + "]");
  EXPECT_ABM_ERROR(read_records(p), p, "nested deeper");
  write_file(p, R"([{"text":"x"},)");
  EXPECT_ABM_ERROR(read_records(p), p + ":");
}

TEST(Jsonl, NotARegularFile) {
  TempDir t;
  EXPECT_ABM_ERROR(read_records("/dev/zero"), "/dev/zero", "not a regular file");
  EXPECT_ABM_ERROR(read_records(t.path), t.path, "not a regular file");
  EXPECT_ABM_ERROR(read_records(t / "missing.jsonl"), t / "missing.jsonl", "cannot open");
}

// A FIFO must be refused at once: opening one for reading blocks until a writer comes.
TEST(Jsonl, FifoIsRefusedWithoutBlocking) {
  TempDir t;
  const std::string p = t / "fifo.jsonl";
  ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0);
  auto result = std::async(std::launch::async, [&] { return san::error_of([&] { read_records(p); }); });
  bool blocked = result.wait_for(std::chrono::seconds(3)) != std::future_status::ready;
  if (blocked) {  // unblock the reader: open the write end and close it (EOF)
    for (int i = 0; i < 100 && result.wait_for(std::chrono::milliseconds(50)) !=
                                      std::future_status::ready; ++i) {
      int fd = ::open(p.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) ::close(fd);
    }
  }
  std::string msg = result.get();
  EXPECT_FALSE(blocked) << "read_records blocked on a FIFO for 3 s (opened before the "
                           "regular-file check)";
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
}

}  // namespace
}  // namespace abm
