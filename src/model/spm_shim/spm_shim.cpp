// A C-ABI shim around SentencePiece, built as its own shared object and loaded with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND) by model/tokenizer.cpp.
//
// Why: Debian's libsentencepiece embeds its own copy of protobuf-lite and exports those
// symbols, while LibTorch pulls in the full libprotobuf. Linked into one binary, the two
// interpose each other and the process crashes in a static initializer before main().
// Kept in a private symbol scope, each library uses its own protobuf.
#include <sentencepiece_processor.h>

#include <cstring>
#include <string>
#include <vector>

namespace {
thread_local std::string g_err;
int fail(const sentencepiece::util::Status& st) {
  g_err = st.ToString();
  return -1;
}
}  // namespace

extern "C" {

const char* abm_spm_error() { return g_err.c_str(); }

void* abm_spm_load(const char* path) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  auto st = sp->Load(path);
  if (!st.ok()) {
    fail(st);
    delete sp;
    return nullptr;
  }
  return sp;
}

void abm_spm_free(void* h) { delete static_cast<sentencepiece::SentencePieceProcessor*>(h); }

// Writes up to cap ids; returns the total count (call again with a larger buffer if > cap).
int abm_spm_encode(void* h, const char* text, int* out, int cap) {
  std::vector<int> ids;
  auto st = static_cast<sentencepiece::SentencePieceProcessor*>(h)->Encode(text, &ids);
  if (!st.ok()) return fail(st);
  for (int i = 0; i < static_cast<int>(ids.size()) && i < cap; ++i) out[i] = ids[i];
  return static_cast<int>(ids.size());
}

// Returns a malloc'd string the caller frees with free(), or nullptr.
char* abm_spm_decode(void* h, const int* ids, int n) {
  std::string text;
  auto st = static_cast<sentencepiece::SentencePieceProcessor*>(h)->Decode(
      std::vector<int>(ids, ids + n), &text);
  if (!st.ok()) {
    fail(st);
    return nullptr;
  }
  return strdup(text.c_str());
}

// which: 0 = vocab size, 1 = bos, 2 = eos, 3 = unk, 4 = pad
int abm_spm_id(void* h, int which) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
  switch (which) {
    case 0: return sp->GetPieceSize();
    case 1: return sp->bos_id();
    case 2: return sp->eos_id();
    case 3: return sp->unk_id();
    default: return sp->pad_id();
  }
}

}  // extern "C"
