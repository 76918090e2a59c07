// XXH64 (Yann Collet's xxHash, 64-bit): the checksum of every checkpoint dataset. Chosen
// over FNV-1a/CRC32 because it runs at memory speed (~10 GB/s), so verifying a 7B-sized
// LoRA state costs little next to the disk read. Matches the reference implementation bit
// for bit (tested against libxxhash), so a checkpoint can be checked outside abmlora.
#pragma once
#include <cstddef>
#include <cstdint>

namespace abm {

uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);

}  // namespace abm
