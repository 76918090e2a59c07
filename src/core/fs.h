// Small filesystem helpers with abm::Error messages that name the path.
#pragma once
#include <string>

namespace abm {

void make_dirs(const std::string& dir);  // mkdir -p
// Throws "DIR: no such <what> directory" / "DIR: not a directory".
void require_dir(const std::string& dir, const std::string& what);
// Throws "PATH: cannot open (No such file ...)" or "PATH: not a regular file": a FIFO, a
// device such as /dev/zero or a directory would be read (or hashed) forever or fail late.
void require_regular_file(const std::string& path);
// The same without opening anything, and only when the path exists (a missing file is
// left to the caller's own message): a FIFO would block the open itself.
void refuse_special_file(const std::string& path);
// Writes text to path atomically (path.tmp.<pid>, fsync, rename).
void write_text_atomic(const std::string& path, const std::string& text);
// Copies the tokenizer files that exist in src_dir (tokenizer.model, ...) into dst_dir.
void copy_tokenizer_files(const std::string& src_dir, const std::string& dst_dir);

}  // namespace abm
