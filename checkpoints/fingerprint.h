// The base-model fingerprint stored in every checkpoint: resuming on another model (or a
// changed one) is refused instead of silently training a mismatched adapter.
#pragma once
#include <string>

namespace abm {

// 16 hex digits of XXH64 over: config.json (parsed, keys sorted, without the provenance-only
// "_name_or_path" and "transformers_version"), then for every tensor of every *.safetensors
// file in name order: its name, dtype, shape and three 64-byte samples of its data (first,
// middle, last). Reads headers and a few pages only — milliseconds even for 7B — and does
// not depend on how the tensors are sharded into files. Errors name the directory.
std::string model_fingerprint(const std::string& model_dir);

}  // namespace abm
