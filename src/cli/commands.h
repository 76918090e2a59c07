// Subcommand entry points. Each lives in its own cmd_*.cpp, parses its own flat config
// struct, and returns the process exit status (errors are thrown as abm::Error).
#pragma once

namespace abm {

int cmd_generate(int argc, char** argv);
int cmd_import_llama2c(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_init_model(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_pretrain(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_tokenizer(int argc, char** argv);
int cmd_abm_init(int argc, char** argv);
int cmd_info_loss(int argc, char** argv);
int cmd_report(int argc, char** argv);

}  // namespace abm
