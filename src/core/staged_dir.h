// An output directory that appears whole or not at all (export --out, export --merge).
//
// Files are written into a sibling staging directory (same file system), which is renamed
// into place by commit(). An output that is one of the command's inputs (the same inode:
// `export --merge` into the base model's own directory) is refused, and so is a non-empty
// directory unless --force; with --force the old directory is replaced only after the new
// one is complete. Without commit() the staging directory is removed.
#pragma once
#include <string>
#include <vector>

namespace abm {

class StagedDir {
 public:
  // option: the flag that named final_dir (for messages); inputs: directories this
  // command reads (never overwritten, even with force).
  StagedDir(std::string final_dir, const std::string& option, bool force,
            const std::vector<std::string>& inputs);
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const std::string& path() const { return staging_; }  // write the files here
  void commit();                                        // rename into final_dir

 private:
  std::string final_, staging_;
  bool committed_ = false;
};

}  // namespace abm
