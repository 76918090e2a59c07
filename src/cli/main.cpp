// abmlora: one binary, one subcommand per job. main() starts the runtime, dispatches, and
// turns any error into one clear line and exit status 2 on every rank.
#include <c10/util/Exception.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/commands.h"
#include "core/check.h"
#include "core/mpi_watchdog.h"
#include "core/runtime.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

const Command kCommands[] = {
    {"train", abm::cmd_train, "LoRA fine-tuning, data parallel over MPI ranks"},
    {"pretrain", abm::cmd_pretrain, "train all weights (train --full), for small base models"},
    {"abm-init", abm::cmd_abm_init, "ABM-LoRA initialization of a LoRA adapter (writes PEFT + abm.json)"},
    {"info-loss", abm::cmd_info_loss, "information loss of an adapter's tangent space on a probe batch"},
    {"report", abm::cmd_report, "compare runs: loss / information-loss curves (PNG) and a table"},
    {"eval", abm::cmd_eval, "loss and perplexity of a model (+ adapter) on a dataset"},
    {"export", abm::cmd_export, "PEFT adapter export, or merge an adapter into a full model"},
    {"generate", abm::cmd_generate, "generate text or token ids from a model"},
    {"import-llama2c", abm::cmd_import_llama2c, "convert a llama2.c checkpoint to an HF directory"},
    {"inspect", abm::cmd_inspect, "show a model directory's config, parameters and sizes"},
    {"init-model", abm::cmd_init_model, "create a randomly initialized LLaMA model directory"},
    {"tokenizer", abm::cmd_tokenizer, "train a SentencePiece tokenizer, or encode text"},
    {"bench", abm::cmd_bench, "measure matmul peak and forward throughput"},
};

void usage() {
  std::printf("abmlora %s — LoRA fine-tuning with ABM initialization\n\n", ABM_VERSION);
  std::printf("Usage: abmlora <command> [options]   (abmlora <command> --help)\n\nCommands:\n");
  for (auto& c : kCommands) std::printf("  %-16s %s\n", c.name, c.summary);
}

// LibTorch errors carry a multi-line backtrace; users get the first line.
std::string first_line(const char* s) {
  std::string m(s);
  auto nl = m.find('\n');
  return nl == std::string::npos ? m : m.substr(0, nl);
}

// launch/run sets ABM_EXIT_FILE: rank 0 writes its exit status there, because mpirun and
// srun do not pass a rank's 3 ("stopped with a checkpoint, requeue me") through a signal.
// Errors end in abort_all (status 2), which needs no file: the launcher fails then too.
void report_status(int status) {
  const char* path = std::getenv("ABM_EXIT_FILE");
  if (!path || !*path || abm::Runtime::rank() != 0) return;
  if (std::FILE* f = std::fopen(path, "w")) {
    std::fprintf(f, "%d\n", status);
    std::fclose(f);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int status = 0;
  try {
    abm::Runtime::init(&argc, &argv);
    std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd.empty() || cmd == "--help" || cmd == "-h" || cmd == "help") {
      if (abm::Runtime::rank() == 0) usage();
    } else if (cmd == "--version") {
      if (abm::Runtime::rank() == 0) std::printf("abmlora %s\n", ABM_VERSION);
    } else {
      const Command* found = nullptr;
      for (auto& c : kCommands)
        if (cmd == c.name) found = &c;
      // Every rank sees the same argv: agree() prints the message once, from rank 0.
      abm::Runtime::agree([&] {
        if (!found) throw abm::Error("unknown command \"" + cmd + "\" (see abmlora --help)");
        abm::comm_timeout_s();  // a malformed ABM_COMM_TIMEOUT_S fails here, before any work
      });
      status = found->run(argc - 1, argv + 1);  // argv[0] becomes the subcommand name
    }
  } catch (const abm::ReportedExit& e) {
    status = e.status;
  } catch (const abm::CommonError& e) {
    abm::Runtime::abort_all(e.what(), 2, /*common=*/true);
  } catch (const abm::Error& e) {
    abm::Runtime::abort_all(e.what(), 2);
  } catch (const c10::Error& e) {
    abm::Runtime::abort_all("LibTorch: " + first_line(e.what_without_backtrace()), 2);
  } catch (const std::exception& e) {
    abm::Runtime::abort_all(first_line(e.what()), 2);
  }
  report_status(status);
  abm::Runtime::finalize();
  return status;
}
