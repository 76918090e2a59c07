// abmlora eval: token-weighted loss and perplexity of a model (+ optional PEFT adapter)
// on a dataset, sharded over ranks.
#include "cli/commands.h"
#include "comm/communicator.h"
#include "core/device.h"
#include "core/log.h"
#include "core/options.h"
#include "lora/peft_io.h"
#include "model/tokenizer.h"
#include "train/compute_dtype.h"
#include "train/train_config.h"
#include "train/evaluate.h"

namespace abm {

int cmd_eval(int argc, char** argv) {
  struct {
    std::string model, adapter, data, tokenizer, format = "auto", tmpl = "auto", dtype = "auto", device = "auto";
    int64_t max_length = 512, micro_batch = 4;
    bool truncate = false, train_on_inputs = false;
    int threads = 0;
  } cfg;
  Options opts("eval", "Loss and perplexity of a model (+ adapter) on a dataset.");
  opts.add()("model", po::value(&cfg.model)->required(), "base model directory")
      ("adapter", po::value(&cfg.adapter)->default_value(""), "PEFT adapter directory")
      ("data", po::value(&cfg.data)->required(), "evaluation data file")
      ("tokenizer", po::value(&cfg.tokenizer)->default_value(""), "tokenizer.model (default: MODEL/tokenizer.model)")
      ("format", po::value(&cfg.format)->default_value(cfg.format), "auto | text | alpaca | chat | tokens")
      ("template", po::value(&cfg.tmpl)->default_value(cfg.tmpl), "auto | plain | alpaca | llama2-chat")
      ("max-length", po::value(&cfg.max_length)->default_value(cfg.max_length), "tokens per example")
      ("truncate", po::bool_switch(&cfg.truncate), "cut longer examples instead of failing")
      ("train-on-inputs", po::bool_switch(&cfg.train_on_inputs), "score prompt tokens too")
      ("micro-batch", po::value(&cfg.micro_batch)->default_value(cfg.micro_batch), "sequences per forward")
      ("dtype", po::value(&cfg.dtype)->default_value(cfg.dtype), "compute dtype: auto (measured) | fp32 | bf16")
      ("device", po::value(&cfg.device)->default_value(cfg.device), "auto | cpu | cuda")
      ("threads", po::value(&cfg.threads)->default_value(0), "intra-op threads per rank (0 = cores / ranks)");
  if (!opts.parse(argc, argv)) return 0;
  opts.print_table();
  auto comm = make_mpi_communicator();
  Runtime::set_threads(cfg.threads);  // before --dtype auto measures with them
  LlamaModel model;
  DataSplits data;
  std::unique_ptr<PeftAdapter> adapter;
  Runtime::agree([&] {
    ABM_REQUIRE(cfg.micro_batch > 0 && cfg.micro_batch <= kMaxGlobalBatch,
                "--micro-batch must be in [1, ", kMaxGlobalBatch, "]");
    ABM_REQUIRE(cfg.max_length > 1 && cfg.max_length <= kMaxLength, "--max-length must be in [2, ",
                kMaxLength, "]");
    LoadOptions lo;
    lo.device = resolve_device(cfg.device);
    lo.dtype = command_dtype("eval", cfg.dtype, cfg.model, comm.get(), lo.device);
    model = LlamaModel::load(cfg.model, lo);
    if (!cfg.adapter.empty())
      adapter = std::make_unique<PeftAdapter>(import_peft(cfg.adapter, model));
    DataOptions d;
    d.path = cfg.data;
    d.tokenizer = cfg.tokenizer.empty() ? tokenizer_path(cfg.model) : cfg.tokenizer;
    d.format = parse_data_format(cfg.format, "--format");
    d.tmpl = parse_template(cfg.tmpl, "--template");
    d.max_length = cfg.max_length;
    d.truncate = cfg.truncate;
    d.train_on_inputs = cfg.train_on_inputs;
    d.vocab_size = model.config().vocab;
    data = load_datasets(d);
  });
  EvalResult e = evaluate(model, data.train, cfg.micro_batch, *comm);
  if (Runtime::rank() == 0)
    std::printf("eval: loss %.6f perplexity %.4f targets %ld\n", e.loss, e.ppl(), e.targets);
  return 0;
}

}  // namespace abm
