// One checkpoint file: the HDF5 layout of docs/design.md §7, in both directions.
//
//   /            attrs: format, format_version, step, epoch, samples_seen, tokens_seen,
//                global_batch, world_size, created, tool_version, config, base_model,
//                base_fingerprint, trainable ("lora" | "full"), lora_config (JSON), attrs_xxh64
//   /adapter/<module>/lora_A [r,in], lora_B [out,r]       ("/params/<module>/<leaf>" when full)
//   /optimizer   attrs: step, beta1, beta2, eps, weight_decay
//   /optimizer/<module>/<leaf>.exp_avg, <leaf>.exp_avg_sq  (same shapes as the tensor)
//   /scheduler   attrs: kind, peak, warmup, total, min_ratio
//   /rng         attrs: sampler_seed; datasets: one uint8 state per generator
//   /abm         (optional) attrs: seed, margin, lr, seconds, steps, scope, teacher;
//                datasets: samples, layers, loss, accuracy
// Every dataset carries "dtype" and "xxh64"; every group's attributes are sealed by
// "attrs_xxh64". Tensor order (= optimizer order) is the groups' creation order.
#pragma once
#include <string>

#include "checkpoints/checkpoint_state.h"

namespace abm {

// Writes the whole state to `path` (replacing it), flushes and fsyncs it. Not atomic by
// itself: write_checkpoint (checkpoint_dir.h) writes a *.tmp and renames.
void write_checkpoint_file(const std::string& path, const CheckpointState& s);

// Reads and validates everything (format, version, structure, every checksum). Any
// failure is one abm::Error "PATH: reason", e.g. "ckpt-00000040.h5: /adapter/model.layers.0
// .self_attn.q_proj/lora_A: checksum mismatch (damaged data)".
CheckpointState read_checkpoint(const std::string& path);

}  // namespace abm
