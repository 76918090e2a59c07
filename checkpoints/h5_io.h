// The checkpoint store's HDF5 vocabulary: scalar attributes, tensors as datasets with a
// checksum attribute each, groups that remember creation order, and a checksum over a
// group's attributes. Every HDF5 call goes through ABM_H5_CHECK (data/h5_check.h).
//
// Integrity model: HDF5's 1.8+ format checksums its own metadata (object headers, B-trees);
// we add XXH64 of every dataset's raw bytes ("xxh64" attribute) and of every sealed
// group's attributes ("attrs_xxh64"), so any flipped bit in the file is caught on read.
#pragma once
#include <hdf5.h>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/h5_check.h"

namespace abm {

hid_t ckpt_fapl();  // file access: 1.8+ format (metadata checksums), no HDF5 file locks
hid_t ckpt_fcpl();  // file creation: the root group tracks creation order
hid_t create_group(hid_t parent, const std::string& name);  // tracks creation order
// Child names in creation order (the order written), falling back to name order.
std::vector<std::string> children(hid_t group);
bool has_child(hid_t group, const std::string& name);

void put_attr(hid_t obj, const char* name, int64_t v);
void put_attr(hid_t obj, const char* name, uint64_t v);
void put_attr(hid_t obj, const char* name, double v);
void put_attr(hid_t obj, const char* name, const std::string& v);
bool has_attr(hid_t obj, const char* name);
int64_t get_i64(hid_t obj, const char* name);
uint64_t get_u64(hid_t obj, const char* name);
double get_f64(hid_t obj, const char* name);
std::string get_str(hid_t obj, const char* name);

// XXH64 over (name, raw bytes) of every attribute but attrs_xxh64, in name order.
uint64_t attrs_hash(hid_t obj);
void seal_attrs(hid_t obj);  // writes attrs_xxh64 (call after the last put_attr)
// Throws "<where>: attribute checksum mismatch" when attrs_xxh64 is absent or wrong.
void verify_attrs(hid_t obj, const std::string& where);

// A contiguous dataset holding t's bytes (f32, f64, bf16, f16, i64, i32, u8), with
// attributes "dtype" (safetensors name) and "xxh64".
void put_tensor(hid_t group, const std::string& name, const at::Tensor& t);
// Reads and verifies a dataset written by put_tensor; max_bytes (the file size) bounds the
// allocation when a damaged header claims a huge shape. Errors name `where`/name.
at::Tensor get_tensor(hid_t group, const std::string& name, uint64_t max_bytes,
                      const std::string& where);
// Shape and dtype only (no data read): for inspect.
std::vector<int64_t> tensor_shape(hid_t group, const std::string& name);

}  // namespace abm
