#!/usr/bin/python3
"""Hostile-input corpus for the real abmlora binary (issue 17, "Must show").

Every case of the main list ("error" cases) is a bad input that must make abmlora
  - exit with status 2 within 20 s (killed at 20 s: FAIL "hang"),
  - print exactly one line starting with "abmlora: error:" over stdout + stderr of all
    ranks, from rank 0 (2 ranks: told apart with mpirun --tag-output), containing the
    case's expected text (the file or option it must name),
  - not die by a signal, not print a crash or backtrace marker,
  - stay under 1 GiB of peak RSS (see "Memory" below),
  - pass the case's own check afterwards where it has one (e.g. nothing overwritten).
Two smaller lists: "nocrash" cases (exit 0 or 2, everything else as above: inputs a
reader may legitimately accept, such as single-byte flips in unchecked bytes), and "ok"
cases (positive controls: exit 0, no error line), which keep the corpus honest.

Memory: each case runs in a session of its own; the runner is a child subreaper, and reaps
every process of the session with os.wait4 (the launcher, and ranks that mpirun leaves
behind after MPI_Abort). The case's peak RSS is the largest rusage.ru_maxrss of them: Linux
folds a reaped child's peak into its parent's, so this is the largest process of the job.

Open MPI: with 2 ranks mpirun adds its own text on a failing job, e.g. the
"Primary job terminated normally, but 1 process returned a non-zero exit code" or the
"MPI_ABORT was invoked on rank 0" block between dashed lines. Such untagged lines are not
errors of abmlora; they are listed as "mpi-noise" on the case's line. ORTE_ERROR_LOG is
counted as a failure (the issue names it as noise to remove), except that a case whose only
fault is Open MPI 4.1's intermittent show_help.c race is run once more (launcher_failure).

Standard library only; run with /usr/bin/python3.
  run_corpus.py --abmlora build/abmlora --ranks 1 --source-dir . --work /tmp/hc
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import h5patch  # noqa: E402

TIME_LIMIT_S = 20.0
RSS_LIMIT_KIB = 1 << 20  # 1 GiB
CRASH_MARKERS = ["terminate called", "what():", "frame #", "Exception raised from",
                 "Traceback (most recent", "Segmentation fault", "core dumped", "Aborted",
                 "ORTE_ERROR_LOG", "std::bad_alloc", "exited on signal", "AddressSanitizer",
                 "runtime error:"]
MPI_NOISE = [("primary-job", "Primary job  terminated normally"),
             ("primary-job", "Primary job terminated normally"),
             ("nonzero-status", "mpirun detected that one or more processes exited"),
             ("mpi-abort", "MPI_ABORT was invoked"),
             ("mpi-abort", "invoking MPI_ABORT causes Open MPI"),
             ("mpi-abort", "MPI_ABORT"),
             ("killed", "mpirun noticed that process rank"),
             ("help-aggregate", "more process has sent help message"),
             ("help-aggregate", "more processes have sent help message"),
             ("help-aggregate", "orte_base_help_aggregate")]
# abmlora's own source locations ("core/fs.cpp:42 [0@host] ...") are for developers, not users
SOURCE_LOCATION = re.compile(r"\b(src|core|checkpoints|data|model|lora|train|abm|comm|sharding|cli)/[\w/]+\.(cpp|h):\d+")
TAG = re.compile(r"^\[\d+,(\d+)\]<(stdout|stderr)>:(.*)$")

# ---------------------------------------------------------------------------------------
# Small file helpers


def spit(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


def jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def deep(n=100000, open_="[", close="]"):
    return open_ * n + close * n


def st_split(raw):
    n = struct.unpack_from("<Q", raw, 0)[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def st_join(header, data):
    """header: dict (dumped compactly) or raw text/bytes used as is."""
    if isinstance(header, dict):
        hs = json.dumps(header, separators=(",", ":")).encode()
    else:
        hs = header.encode() if isinstance(header, str) else header
    hs += b" " * ((8 - len(hs) % 8) % 8)
    return struct.pack("<Q", len(hs)) + hs + data


def st_rewrite(raw, edit):
    """Rebuilds a safetensors file: edit(name, entry, bytes) -> (entry, bytes) or None to drop;
    offsets recomputed, no holes."""
    h, data = st_split(raw)
    out, blob = {}, bytearray()
    for name, e in h.items():
        if name == "__metadata__":
            out[name] = e
            continue
        b, end = e["data_offsets"]
        r = edit(name, dict(e), data[b:end])
        if r is None:
            continue
        e2, bytes_ = r
        e2["data_offsets"] = [len(blob), len(blob) + len(bytes_)]
        blob += bytes_
        out[name] = e2
    return st_join(out, bytes(blob))


# ---------------------------------------------------------------------------------------
# Context: paths and fixtures shared by the cases (made once per run)


class Ctx:
    def __init__(self, args):
        self.bin = os.path.abspath(args.abmlora)
        self.src = os.path.abspath(args.source_dir)
        self.work = os.path.abspath(args.work)
        self.ranks = args.ranks
        self.fix = os.path.join(self.work, "fixtures")
        self.model = os.path.join(self.fix, "model")  # a real copy: cases never touch the tree's
        self.data = os.path.join(self.fix, "d.jsonl")
        self.run0 = os.path.join(self.fix, "r0")
        self.adapter = os.path.join(self.run0, "adapter")
        self.ckpt1 = os.path.join(self.run0, "checkpoints", "ckpt-00000001.h5")
        self.ckpt2 = os.path.join(self.run0, "checkpoints", "ckpt-00000002.h5")
        self.fixture_error = {}  # fixture -> why it is missing
        self._st = None
        self._cfg = None
        self.env = dict(os.environ)
        self.env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                         "ABM_MATMUL_GFLOPS": "fp32=1,bf16=1", "OMPI_MCA_rmaps_base_oversubscribe": "1"})

    # the default model's bytes and config, read once
    @property
    def st(self):
        if self._st is None:
            self._st = slurp(os.path.join(self.model, "model.safetensors"))
        return self._st

    @property
    def cfg(self):
        if self._cfg is None:
            self._cfg = json.loads(slurp(os.path.join(self.model, "config.json")))
        return dict(self._cfg)

    def subst(self, s, w):
        return (s.replace("{W}", w).replace("{F}", self.fix).replace("{M}", self.model)
                .replace("{D}", self.data).replace("{A}", self.adapter)
                .replace("{R0}", self.run0).replace("{C1}", self.ckpt1).replace("{C2}", self.ckpt2)
                .replace("{S}", self.src))

    def launcher(self):
        if self.ranks == 1:
            return [self.bin]
        return ["mpirun", "--oversubscribe", "-np", str(self.ranks), "--tag-output",
                "-x", "ABM_MATMUL_GFLOPS", "-x", "OMPI_ALLOW_RUN_AS_ROOT",
                "-x", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", self.bin]

    def model_dir(self, w, name="m", cfg=None, cfg_text=None, st=None, tokenizer="link",
                  copy=False):
        """A model directory under the case dir. cfg: dict edit fn(dict) or dict; cfg_text:
        raw config bytes/text; st: safetensors bytes (default: the fixture's, linked, or
        copied with copy=True); tokenizer: "link" | None (absent) | bytes."""
        d = os.path.join(w, name)
        os.makedirs(d, exist_ok=True)
        if cfg_text is not None:
            spit(os.path.join(d, "config.json"), cfg_text)
        elif cfg is not None:
            c = self.cfg
            c = cfg(c) or c if callable(cfg) else cfg
            spit(os.path.join(d, "config.json"), json.dumps(c, indent=2))
        else:
            shutil.copy(os.path.join(self.model, "config.json"), d)
        stp = os.path.join(d, "model.safetensors")
        if st is not None:
            spit(stp, st)
        elif copy:
            shutil.copy(os.path.join(self.model, "model.safetensors"), stp)
        else:
            os.symlink(os.path.join(self.model, "model.safetensors"), stp)
        tp = os.path.join(d, "tokenizer.model")
        if tokenizer == "link":
            if copy:
                shutil.copy(os.path.join(self.model, "tokenizer.model"), tp)
            else:
                os.symlink(os.path.join(self.model, "tokenizer.model"), tp)
        elif tokenizer is not None:
            spit(tp, tokenizer)
        return d

    def adapter_dir(self, w, name="ad", cfg=None, cfg_text=None, st=None, st_edit=None,
                    weights=True):
        """A copy of the fixture adapter with edits: cfg edit fn(dict)/dict, raw cfg_text,
        raw st bytes, st_edit (see st_rewrite), weights=False drops the weights file."""
        d = os.path.join(w, name)
        os.makedirs(d, exist_ok=True)
        src_cfg = os.path.join(self.adapter, "adapter_config.json")
        src_st = os.path.join(self.adapter, "adapter_model.safetensors")
        if cfg_text is not None:
            spit(os.path.join(d, "adapter_config.json"), cfg_text)
        elif cfg is not None:
            c = json.loads(slurp(src_cfg))
            c = cfg(c) or c if callable(cfg) else cfg
            spit(os.path.join(d, "adapter_config.json"), json.dumps(c, indent=2))
        else:
            shutil.copy(src_cfg, d)
        if weights:
            p = os.path.join(d, "adapter_model.safetensors")
            if st is not None:
                spit(p, st)
            elif st_edit is not None:
                spit(p, st_rewrite(slurp(src_st), st_edit))
            else:
                shutil.copy(src_st, p)
        return d


# ---------------------------------------------------------------------------------------
# Command builders: base options per command, overridden per case (an option given twice
# would itself be an error, so overrides replace).

DROP = object()


def build(command, base, over, raw=()):
    opts = dict(base)
    for k, v in over.items():
        key = k.replace("_", "-")
        if v is DROP:
            opts.pop(key, None)
        else:
            opts[key] = v
    args = [command] if isinstance(command, str) else list(command)
    for k, v in opts.items():
        args.append("--" + k)
        if v is not True:
            args.append(str(v))
    return args + list(raw)


TRAIN = {"model": "{M}", "data": "{D}", "template": "plain", "max-length": "128", "steps": "2",
         "global-batch": "4", "dtype": "fp32", "out": "{W}/run"}
ABM = {"model": "{M}", "data": "{D}", "template": "plain", "max-length": "128", "dtype": "fp32",
       "out": "{W}/abm", "abm-samples": "4", "abm-steps": "1", "abm-max-length": "64",
       "abm-batch": "2"}
EVAL = {"model": "{M}", "data": "{D}", "template": "plain", "max-length": "128", "dtype": "fp32"}
GEN = {"model": "{M}", "max-new-tokens": "2", "dtype": "fp32"}
EXPORT = {"model": "{M}", "adapter": "{A}", "out": "{W}/exp"}
INFO = {"model": "{M}", "data": "{D}", "template": "plain", "max-length": "128",
        "global-batch": "4", "dtype": "fp32"}


def train(raw=(), **over):
    return build("train", TRAIN, over, raw)


def abm_init(raw=(), **over):
    return build("abm-init", ABM, over, raw)


def evaluate(raw=(), **over):
    return build("eval", EVAL, over, raw)


def gen(raw=(), **over):
    return build("generate", GEN, over, raw)


def export(raw=(), **over):
    return build("export", EXPORT, over, raw)


def info_loss(raw=(), **over):
    return build("info-loss", INFO, over, raw)


# ---------------------------------------------------------------------------------------
# Cases


class Case:
    def __init__(self, kind, name, args, setup=None, expect=None, post=None, needs=()):
        self.kind, self.name, self.args = kind, name, args
        self.setup, self.post, self.needs = setup, post, tuple(needs)
        self.expect = [] if expect is None else ([expect] if isinstance(expect, str) else list(expect))


CASES = []


def _add(kind, name, args, setup=None, expect=None, post=None, needs=()):
    assert all(c.name != name for c in CASES), "duplicate case " + name
    # Cases that read the trained fixture say so, to be reported clearly when it is missing.
    text = " ".join(args)
    needs = set(needs)
    if "{A}" in text or "{R0}" in text or "{W}/ad" in text:
        needs.add("r0")
    if "{C1}" in text or "{C2}" in text:
        needs.add("r0")
    CASES.append(Case(kind, name, args, setup, expect, post, needs))


def E(name, args, setup=None, expect=None, post=None, needs=()):
    _add("error", name, args, setup, expect, post, needs)


def N(name, args, setup=None, expect=None, post=None, needs=()):
    _add("nocrash", name, args, setup, expect, post, needs)


def OK(name, args, setup=None, expect=None, post=None, needs=()):
    _add("ok", name, args, setup, expect, post, needs)


def writes(rel, data):
    """setup: write bytes/text to WORK/rel (a function of the case dir)."""
    def f(ctx, w):
        spit(os.path.join(w, rel), data() if callable(data) else data)
    return f


def all_of(*fns):
    def f(ctx, w):
        for fn in fns:
            fn(ctx, w)
    return f


def model(name="m", **kw):
    def f(ctx, w):
        ctx.model_dir(w, name, **kw)
    return f


def adapter(name="ad", **kw):
    def f(ctx, w):
        ctx.adapter_dir(w, name, **kw)
    return f


def st_edit_model(edit):
    """setup: a model dir m/ whose model.safetensors is the fixture's rewritten by edit."""
    def f(ctx, w):
        ctx.model_dir(w, "m", st=st_rewrite(ctx.st, edit))
    return f


def st_raw_model(make):
    """setup: a model dir m/ whose model.safetensors is make(ctx.st) (bytes)."""
    def f(ctx, w):
        ctx.model_dir(w, "m", st=make(ctx.st))
    return f


def set_cfg(**kv):
    def edit(c):
        for k, v in kv.items():
            if v is DROP:
                c.pop(k, None)
            else:
                c[k] = v
        return c
    return edit


def deep_cfg_text(ctx_cfg_key="rms_norm_eps"):
    """config.json with one field nested 100,000 levels (the issue's reproduction)."""
    def f(ctx, w):
        s = json.dumps(ctx.cfg).replace('"%s": 1e-05' % ctx_cfg_key,
                                        '"%s": ' % ctx_cfg_key + deep())
        assert deep() in s
        ctx.model_dir(w, "m", cfg_text=s)
    return f


GOOD_ROW = {"instruction": "Continue.", "input": "a b c", "output": "d e f g"}


def data_file(rows_text, name="x.jsonl"):
    return writes(name, rows_text)


def absent(rel):
    def f(ctx, w):
        p = os.path.join(w, rel)
        return "%s was written" % p if os.path.lexists(p) else None
    return f


def define_cases():
    M_ = "{W}/m"  # the case's own model directory (setups: model(), st_*_model(), ...)

    # ---- the command itself ------------------------------------------------------------
    E("cmd_unknown_trian", ["trian"], expect="trian")
    E("cmd_unknown_dashdash", ["--frobnicate"], expect="--frobnicate")
    E("cmd_unknown_export_typo", ["exprot", "--model", "{M}"], expect="exprot")

    # ---- train: every float option non-finite / out of range ---------------------------
    for opt, vals in [("lr", ["inf", "nan", "-inf", "1e30", "0", "-0.001", "2"]),
                      ("min-lr-ratio", ["nan", "-5", "inf", "2"]),
                      ("clip", ["inf", "nan", "-1"]),
                      ("weight-decay", ["inf", "nan", "-0.1", "2"]),
                      ("lora-dropout", ["nan", "inf", "-0.5", "1"]),
                      ("lora-alpha", ["nan", "inf", "-16", "0"]),
                      ("eval-fraction", ["nan", "1", "-0.1"]),
                      ("time-budget", ["nan", "inf", "-1"])]:
        for v in vals:
            E("train_%s_%s" % (opt.replace("-", "_"), v.replace("-", "neg").replace(".", "p")),
              train(**{opt: v}), expect="--" + opt)
    E("train_lr_not_a_number", train(lr="abc"), expect="--lr")
    E("train_lr_empty", train(lr=""), expect="--lr")
    E("train_lr_hex", train(lr="0x1p-3x"), expect="--lr")
    # ints
    E("train_global_batch_99999999999", train(global_batch="99999999999"), expect="--global-batch")
    E("train_global_batch_17179869184", train(global_batch="17179869184"), expect="--global-batch")
    E("train_global_batch_0", train(global_batch="0"), expect="--global-batch")
    E("train_global_batch_neg", train(global_batch="-4"), expect="--global-batch")
    E("train_global_batch_2pow63", train(global_batch="9223372036854775808"), expect="--global-batch")
    E("train_global_batch_float", train(global_batch="4.5"), expect="--global-batch")
    E("train_global_batch_not_divisible", train(global_batch="4", micro_batch="3"),
      expect="--global-batch")
    E("train_micro_batch_0", train(micro_batch="0"), expect="--micro-batch")
    E("train_micro_batch_gt_global", train(micro_batch="8"), expect="--micro-batch")
    E("train_steps_neg", train(steps="-2"), expect="--steps")
    E("train_steps_huge", train(steps="1000000000000000"), expect="--steps")
    E("train_steps_and_epochs_0", train(steps="0"), expect="--steps")
    E("train_epochs_huge", train(steps="0", epochs="1000000000000000"), expect="--epochs")
    E("train_warmup_neg", train(warmup="-1"), expect="--warmup")
    E("train_max_length_1", train(max_length="1"), expect="--max-length")
    E("train_max_length_2pow40", train(max_length="1099511627776"), expect="--max-length")
    E("train_lora_r_0", train(lora_r="0"), expect="--lora-r")
    E("train_lora_r_neg", train(lora_r="-8"), expect="--lora-r")
    E("train_lora_r_2pow40", train(lora_r="1099511627776"), expect="--lora-r")
    E("train_lora_r_above_model", train(lora_r="4096"), expect="r=4096")
    E("train_lora_targets_bogus", train(lora_targets="foo_proj"), expect="foo_proj")
    E("train_lora_targets_empty", train(lora_targets=","), expect="--lora-targets")
    E("train_threads_neg", train(threads="-3"), expect="--threads")
    E("train_threads_huge", train(threads="1000000"), expect="--threads")
    E("train_checkpoint_every_neg", train(checkpoint_every="-1"), expect="--checkpoint-every")
    E("train_keep_checkpoints_neg", train(keep_checkpoints="-1"), expect="--keep-checkpoints")
    E("train_eval_every_neg", train(eval_every="-1"), expect="--eval-every")
    E("train_log_every_neg", train(log_every="-1"), expect="--log-every")
    E("train_info_loss_every_neg", train(info_loss_every="-5"), expect="--info-loss-every")
    # strings
    E("train_init_bogus", train(init="xavier"), expect="--init")
    E("train_init_adapter_without_dir", train(init="adapter"), expect="--init-adapter")
    E("train_init_adapter_missing_dir", train(init="adapter", init_adapter="{W}/nothere"),
      expect="{W}/nothere")
    E("train_schedule_bogus", train(schedule="linear"), expect="--schedule")
    E("train_backprop_bogus", train(backprop="magic"), expect="--backprop")
    E("train_recompute_autograd", train(recompute=True, backprop="autograd"), expect="--recompute")
    E("train_format_bogus", train(format="csv"), expect="--format")
    E("train_template_bogus", train(template="vicuna"), expect="--template")
    E("train_dtype_bogus", train(dtype="fp8"), expect="--dtype")
    E("train_device_bogus", train(device="tpu"), expect="--device")
    E("train_full_bf16", ["pretrain"] + train(dtype="bf16")[1:], expect="--full")
    # the option parser
    E("train_unknown_option", train(raw=["--frobnicate"]), expect="--frobnicate")
    E("train_missing_value", train(raw=["--lr"]), expect="--lr")
    E("train_option_twice", train(raw=["--steps", "3"]), expect="--steps")
    E("train_missing_model", train(model=DROP), expect="--model")
    E("train_missing_data", train(data=DROP), expect="--data")
    E("train_positional_junk", train(raw=["junk"]), expect="junk")
    # --config
    E("train_config_directory", train(config="{W}/cfgdir"), setup=writes("cfgdir/x", "x"),
      expect="{W}/cfgdir")
    E("train_config_missing", train(config="{W}/none.ini"), expect="{W}/none.ini")
    E("train_config_dev_zero", train(config="/dev/zero"), expect="/dev/zero")
    E("train_config_bad_line", train(config="{W}/c.ini"),
      setup=writes("c.ini", "steps = 2\nthis is not key value\n"), expect="{W}/c.ini")
    E("train_config_unknown_key", train(config="{W}/c.ini"),
      setup=writes("c.ini", "frobnicate = 3\n"), expect="frobnicate")
    E("train_config_lr_inf", train(lr=DROP, config="{W}/c.ini"), setup=writes("c.ini", "lr = inf\n"),
      expect="lr")
    E("train_config_binary", train(config="{W}/c.ini"),
      setup=writes("c.ini", bytes(range(256)) * 4), expect="{W}/c.ini")
    # ABM options through train --init abm
    for opt, v in [("abm-margin", "nan"), ("abm-margin", "inf"), ("abm-margin", "-1"),
                   ("abm-lr", "inf"), ("abm-lr", "0"), ("abm-lr", "nan"), ("abm-lr", "5"),
                   ("abm-weight-decay", "nan"), ("abm-samples", "0"), ("abm-steps", "-1"),
                   ("abm-max-length", "1"), ("abm-scope", "galactic"), ("abm-layers", "x,y"),
                   ("abm-layers", "99"), ("abm-layers", "last:0")]:
        E("train_init_abm_%s_%s" % (opt.replace("-", "_"), re.sub(r"\W", "_", v.replace("-", "neg"))),
          train(init="abm", **{opt: v}), expect="--" + opt)

    # ---- train: data ------------------------------------------------------------------
    E("data_missing_file", train(data="{W}/none.jsonl"), expect="{W}/none.jsonl")
    E("data_directory", train(data="{W}/dd"), setup=writes("dd/x", "x"), expect="{W}/dd")
    E("data_dev_zero", train(data="/dev/zero", steps="2"), expect="/dev/zero")

    def fifo(ctx, w):
        os.mkfifo(os.path.join(w, "fifo.jsonl"))
    E("data_fifo", train(data="{W}/fifo.jsonl"), setup=fifo, expect="{W}/fifo.jsonl")
    E("data_empty_file", train(data="{W}/x.jsonl"), setup=data_file(""), expect="{W}/x.jsonl")
    E("data_blank_lines_only", train(data="{W}/x.jsonl"), setup=data_file("\n  \n\t\n"),
      expect="{W}/x.jsonl")
    E("data_not_json", train(data="{W}/x.jsonl"), setup=data_file("hello world\n"),
      expect="{W}/x.jsonl:1")
    E("data_truncated_json", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([GOOD_ROW]) + '{"instruction": "a", "out'), expect="{W}/x.jsonl:2")
    # a file whose text starts with '[' is read as one JSON array: record 1 is the number 1
    E("data_array_line", train(data="{W}/x.jsonl"), setup=data_file("[1, 2, 3]\n"),
      expect="{W}/x.jsonl")
    E("data_string_line", train(data="{W}/x.jsonl"), setup=data_file('"just a string"\n'),
      expect="{W}/x.jsonl:1")
    E("data_null_line", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([GOOD_ROW]) + "null\n"), expect="{W}/x.jsonl:2")
    E("data_no_known_field", train(data="{W}/x.jsonl"), setup=data_file('{"foo": "bar"}\n'),
      expect="{W}/x.jsonl:1")
    E("data_missing_output", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([GOOD_ROW, {"instruction": "x", "input": ""}])), expect="{W}/x.jsonl:2")
    E("data_output_number", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([GOOD_ROW, dict(GOOD_ROW, output=5)])), expect="{W}/x.jsonl:2")
    E("data_instruction_array", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([dict(GOOD_ROW, instruction=["a"])])), expect="{W}/x.jsonl:1")
    E("data_input_object", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([dict(GOOD_ROW, input={"a": 1})])), expect="{W}/x.jsonl:1")
    E("data_invalid_utf8", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([GOOD_ROW]).encode() + b'{"instruction": "a\xff\xfeb", "input": "", "output": "c"}\n'),
      expect="{W}/x.jsonl:2")
    E("data_nul_byte", train(data="{W}/x.jsonl"),
      setup=data_file(b'{"instruction": "a\x00b", "input": "", "output": "c"}\n'), expect="{W}/x.jsonl:1")
    E("data_nul_bytes_only", train(data="{W}/x.jsonl"), setup=data_file(b"\x00" * 4096),
      expect="{W}/x.jsonl")
    E("data_binary_garbage", train(data="{W}/x.jsonl"),
      setup=data_file(bytes((i * 97 + 13) % 256 for i in range(65536))), expect="{W}/x.jsonl")
    E("data_deep_nesting_line", train(data="{W}/x.jsonl"), setup=data_file(deep() + "\n"),
      expect="{W}/x.jsonl")
    E("data_deep_nesting_field", train(data="{W}/x.jsonl"),
      setup=data_file('{"instruction": ' + deep() + ', "output": "x"}\n'), expect="{W}/x.jsonl")
    E("data_deep_object_nesting", train(data="{W}/x.jsonl"),
      setup=data_file('{"a":' * 100000 + "1" + "}" * 100000 + "\n"), expect="{W}/x.jsonl")
    E("data_deep_nesting_second_line", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([GOOD_ROW]) + '{"instruction": "a", "input": ' + deep() + ', "output": "b"}\n'),
      expect="{W}/x.jsonl")
    E("data_10mb_single_line", train(data="{W}/x.jsonl"),
      setup=data_file(lambda: jsonl([dict(GOOD_ROW, output="word " * 2000000)])),
      expect="{W}/x.jsonl")
    E("data_all_empty_rows", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([{"instruction": "", "input": "", "output": ""}] * 64)),
      expect="{W}/x.jsonl")
    E("data_row_too_long", train(data="{W}/x.jsonl", max_length="8"),
      setup=data_file(jsonl([dict(GOOD_ROW, output="one two three four five six seven eight nine ten")])),
      expect="{W}/x.jsonl")
    E("data_json_array_deep", train(data="{W}/x.json"), setup=writes("x.json", deep()),
      expect="{W}/x.json")
    E("data_json_array_not_array", train(data="{W}/x.json"), setup=writes("x.json", '{"a": 1}'),
      expect="{W}/x.json")
    E("data_json_array_truncated", train(data="{W}/x.json"),
      setup=writes("x.json", "[" + json.dumps(GOOD_ROW) + ","), expect="{W}/x.json")
    E("data_tokens_negative_id", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([{"input_ids": [1, -5, 3]}])), expect="{W}/x.jsonl:1")
    E("data_tokens_id_outside_vocab", train(data="{W}/x.jsonl"),
      setup=data_file(jsonl([{"input_ids": [1, 99999999, 3]}])), expect="{W}/x.jsonl")
    E("data_tokens_id_int64_max", train(data="{W}/x.jsonl"),
      setup=data_file('{"input_ids": [1, 9223372036854775807]}\n'), expect="{W}/x.jsonl")
    E("data_tokens_id_2pow64", train(data="{W}/x.jsonl"),
      setup=data_file('{"input_ids": [1, 18446744073709551616]}\n'), expect="{W}/x.jsonl:1")
    E("data_tokens_float_id", train(data="{W}/x.jsonl"),
      setup=data_file('{"input_ids": [1, 2.5]}\n'), expect="{W}/x.jsonl:1")
    E("data_tokens_empty", train(data="{W}/x.jsonl"), setup=data_file('{"input_ids": []}\n'),
      expect="{W}/x.jsonl:1")
    E("data_tokens_labels_length", train(data="{W}/x.jsonl"),
      setup=data_file('{"input_ids": [1, 2, 3], "labels": [1, 2]}\n'), expect="{W}/x.jsonl:1")
    E("data_tokens_labels_bad_value", train(data="{W}/x.jsonl"),
      setup=data_file('{"input_ids": [1, 2, 3], "labels": [1, -5, 3]}\n'), expect="{W}/x.jsonl:1")
    E("data_chat_bad_role", train(data="{W}/x.jsonl", template="llama2-chat"),
      setup=data_file(jsonl([{"messages": [{"role": "robot", "content": "hi"}]}])), expect="{W}/x.jsonl:1")
    E("data_chat_empty", train(data="{W}/x.jsonl", template="llama2-chat"),
      setup=data_file(jsonl([{"messages": []}])), expect="{W}/x.jsonl:1")
    E("data_chat_not_alternating", train(data="{W}/x.jsonl", template="llama2-chat"),
      setup=data_file(jsonl([{"messages": [{"role": "user", "content": "a"},
                                           {"role": "user", "content": "b"}]}])),
      expect="{W}/x.jsonl:1")
    E("data_chat_turn_not_object", train(data="{W}/x.jsonl", template="llama2-chat"),
      setup=data_file(jsonl([{"messages": ["hi"]}])), expect="{W}/x.jsonl:1")
    E("data_eval_fraction_leaves_none", train(data="{W}/x.jsonl", eval_fraction="0.5"),
      setup=data_file(jsonl([GOOD_ROW])), expect="{W}/x.jsonl")
    E("data_eval_data_and_fraction", train(eval_data="{D}", eval_fraction="0.1"),
      expect="--eval-data")
    E("data_eval_data_missing", train(eval_data="{W}/none.jsonl"), expect="{W}/none.jsonl")
    E("data_eval_data_deep", train(eval_data="{W}/e.jsonl"), setup=writes("e.jsonl", deep() + "\n"),
      expect="{W}/e.jsonl")
    E("data_tokenizer_missing", train(tokenizer="{W}/none.model"), expect="{W}/none.model")
    E("data_tokenizer_corrupt", train(tokenizer="{W}/t.model"),
      setup=writes("t.model", bytes((i * 31 + 7) % 256 for i in range(4096))), expect="{W}/t.model")
    E("data_tokenizer_empty", train(tokenizer="{W}/t.model"), setup=writes("t.model", b""),
      expect="{W}/t.model")
    E("data_tokenizer_directory", train(tokenizer="{W}/tdir"), setup=writes("tdir/x", "x"),
      expect="{W}/tdir")
    E("data_text_needs_tokenizer", train(model=M_), setup=model(tokenizer=None), expect="tokenizer")

    # ---- train: run directory ---------------------------------------------------------
    E("train_out_is_file", train(out="{W}/f"), setup=writes("f", "x"), expect="{W}/f")
    E("train_out_under_file", train(out="{W}/f/run"), setup=writes("f", "x"), expect="{W}/f")

    # non-finite training: weights that make the loss NaN must stop the run, write nothing
    def nan_norm(name, e, b):
        if name == "model.norm.weight":
            b = struct.pack("<f", float("nan")) * (len(b) // 4)
        return e, b
    E("train_nan_weights_loss", train(model=M_, checkpoint_every="1"), setup=st_edit_model(nan_norm),
      expect="step", post=lambda ctx, w: absent("run/adapter")(ctx, w) or
      absent("run/checkpoints/latest")(ctx, w))

    # ---- model directory: config.json -------------------------------------------------
    E("model_missing_dir", gen(model="{W}/nothere"), expect="{W}/nothere")
    E("model_is_a_file", gen(model="{D}"), expect="{D}")
    E("model_empty_dir", gen(model="{W}/empty"), setup=lambda c, w: os.makedirs(os.path.join(w, "empty")),
      expect="{W}/empty")
    E("config_missing", gen(model=M_),
      setup=lambda c, w: os.remove(c.model_dir(w) + "/config.json"), expect="{W}/m/config.json")
    E("config_empty", gen(model=M_), setup=model(cfg_text=""), expect="{W}/m/config.json")
    E("config_not_json", gen(model=M_), setup=model(cfg_text="hidden_size = 256"),
      expect="{W}/m/config.json")
    E("config_array", gen(model=M_), setup=model(cfg_text="[]"), expect="{W}/m/config.json")
    E("config_nul_bytes", gen(model=M_), setup=model(cfg_text=b"\x00" * 64), expect="{W}/m/config.json")

    def cfg_dir(c, w):
        d = c.model_dir(w)
        os.remove(d + "/config.json")
        os.makedirs(d + "/config.json")
    E("config_is_directory", gen(model=M_), setup=cfg_dir, expect="{W}/m/config.json")

    def cfg_devzero(c, w):
        d = c.model_dir(w)
        os.remove(d + "/config.json")
        os.symlink("/dev/zero", d + "/config.json")
    E("config_symlink_dev_zero", gen(model=M_), setup=cfg_devzero, expect="{W}/m/config.json")
    E("config_huge_file", gen(model=M_),
      setup=lambda c, w: c.model_dir(w, cfg_text=json.dumps(c.cfg)[:-1] + ', "pad": "' + "x" * (64 << 20) + '"}'),
      expect="{W}/m/config.json")
    for tag, edit in [("missing_hidden_size", set_cfg(hidden_size=DROP)),
                      ("hidden_size_string", set_cfg(hidden_size="256")),
                      ("hidden_size_zero", set_cfg(hidden_size=0)),
                      ("hidden_size_negative", set_cfg(hidden_size=-256)),
                      ("hidden_size_float", set_cfg(hidden_size=256.5)),
                      ("hidden_size_2pow62", set_cfg(hidden_size=1 << 62)),
                      ("layers_zero", set_cfg(num_hidden_layers=0)),
                      ("heads_not_dividing", set_cfg(num_attention_heads=7)),
                      ("kv_heads_not_dividing", set_cfg(num_key_value_heads=3)),
                      ("vocab_negative", set_cfg(vocab_size=-1)),
                      ("max_positions_2pow40", set_cfg(max_position_embeddings=1 << 40)),
                      ("max_positions_neg5", set_cfg(max_position_embeddings=-5)),
                      ("rms_eps_zero", set_cfg(rms_norm_eps=0)),
                      ("rms_eps_string", set_cfg(rms_norm_eps="tiny")),
                      ("rope_theta_negative", set_cfg(rope_theta=-1.0)),
                      ("rope_scaling_yarn", set_cfg(rope_scaling={"type": "yarn", "factor": 2})),
                      ("rope_scaling_factor_zero", set_cfg(rope_scaling={"type": "linear", "factor": 0})),
                      ("rope_scaling_number", set_cfg(rope_scaling=5)),
                      ("model_type_mistral", set_cfg(model_type="mistral")),
                      ("bos_outside_vocab", set_cfg(bos_token_id=5000)),
                      ("tie_string", set_cfg(tie_word_embeddings="yes")),
                      ("intermediate_mismatch", set_cfg(intermediate_size=512)),
                      ("vocab_mismatch", set_cfg(vocab_size=4096)),
                      ("layers_more_than_weights", set_cfg(num_hidden_layers=7))]:
        E("config_" + tag, gen(model=M_), setup=model(cfg=edit), expect="{W}/m")
    E("config_max_positions_2pow40_inspect", ["inspect", M_],
      setup=model(cfg=set_cfg(max_position_embeddings=1 << 40)), expect="{W}/m/config.json")
    E("config_max_positions_2pow40_train", train(model=M_),
      setup=model(cfg=set_cfg(max_position_embeddings=1 << 40)), expect="{W}/m/config.json")
    E("config_max_positions_neg5_train", train(model=M_),
      setup=model(cfg=set_cfg(max_position_embeddings=-5)), expect="{W}/m/config.json")
    # the 100,000-deep config.json, through every command that reads it
    E("config_deep_inspect", ["inspect", M_], setup=deep_cfg_text(), expect="{W}/m/config.json")
    E("config_deep_generate", gen(model=M_), setup=deep_cfg_text(), expect="{W}/m/config.json")
    E("config_deep_train", train(model=M_), setup=deep_cfg_text(), expect="{W}/m/config.json")
    E("config_deep_eval", evaluate(model=M_), setup=deep_cfg_text(), expect="{W}/m/config.json")
    E("config_deep_abm_init", abm_init(model=M_), setup=deep_cfg_text(), expect="{W}/m/config.json")
    E("config_deep_export", export(model=M_), setup=deep_cfg_text(), expect="{W}/m/config.json")
    E("config_deep_info_loss", info_loss(model=M_), setup=deep_cfg_text(), expect="{W}/m/config.json")
    E("config_deep_object_inspect", ["inspect", M_],
      setup=lambda c, w: c.model_dir(w, cfg_text=json.dumps(c.cfg)[:-1] + ', "x": ' + '{"a":' * 100000 + "1" + "}" * 100001),
      expect="{W}/m/config.json")

    # ---- model directory: model.safetensors -------------------------------------------
    ST = "{W}/m/model.safetensors"

    def hdr_len(n):
        return st_raw_model(lambda raw: struct.pack("<Q", n) + raw[8:])

    def with_header(text):
        return st_raw_model(lambda raw: st_join(text, b""))

    def with_extra(name, entry, extra_bytes):
        def make(raw):
            h, data = st_split(raw)
            e = dict(entry)
            e["data_offsets"] = [len(data), len(data) + len(extra_bytes)]
            h[name] = e
            return st_join(h, data + extra_bytes)
        return st_raw_model(make)

    def set_entry(tensor, **kv):
        def make(raw):
            h, data = st_split(raw)
            h[tensor].update(kv)
            return st_join(h, data)
        return st_raw_model(make)

    def meta_deep(raw):
        h, data = st_split(raw)
        hs = json.dumps(h, separators=(",", ":"))
        hs = hs.replace('"__metadata__":{"format":"pt"}', '"__metadata__":{"format":"pt","x":' + deep() + "}")
        return st_join(hs, data)

    for cmd_name, args in [("inspect", ["inspect", M_]), ("generate", gen(model=M_)),
                           ("train", train(model=M_)), ("eval", evaluate(model=M_))]:
        E("st_metadata_deep_" + cmd_name, args, setup=st_raw_model(meta_deep), expect=ST)
    E("st_missing", gen(model=M_), setup=lambda c, w: os.remove(c.model_dir(w) + "/model.safetensors"),
      expect="{W}/m")
    E("st_empty", ["inspect", M_], setup=st_raw_model(lambda raw: b""), expect=ST)
    E("st_7_bytes", gen(model=M_), setup=st_raw_model(lambda raw: raw[:7]), expect=ST)
    E("st_header_len_2pow40", ["inspect", M_], setup=hdr_len(1 << 40), expect=ST)
    E("st_header_len_max_u64", gen(model=M_), setup=hdr_len((1 << 64) - 1), expect=ST)
    E("st_header_len_past_eof_by_1", ["inspect", M_],
      setup=st_raw_model(lambda raw: struct.pack("<Q", len(raw) - 7) + raw[8:]), expect=ST)
    E("st_header_len_zero", gen(model=M_), setup=hdr_len(0), expect=ST)
    E("st_header_not_json", ["inspect", M_], setup=with_header("not json at all!"), expect=ST)
    E("st_header_array", gen(model=M_), setup=with_header("[1,2,3]"), expect=ST)
    E("st_header_binary", ["inspect", M_],
      setup=st_raw_model(lambda raw: raw[:8] + bytes(255 - b for b in raw[8:6032]) + raw[6032:]),
      expect=ST)
    E("st_dtype_unknown", gen(model=M_), setup=set_entry("model.norm.weight", dtype="F8_E4M3"),
      expect=ST)
    E("st_dtype_not_string", ["inspect", M_], setup=set_entry("model.norm.weight", dtype=5), expect=ST)
    E("st_shape_negative", ["inspect", M_], setup=set_entry("model.norm.weight", shape=[-256]),
      expect=ST)
    E("st_shape_not_array", gen(model=M_), setup=set_entry("model.norm.weight", shape="256"), expect=ST)
    E("st_shape_float", ["inspect", M_], setup=set_entry("model.norm.weight", shape=[256.5]), expect=ST)
    E("st_shape_2pow62p1_in_4_bytes_inspect", ["inspect", M_],
      setup=with_extra("extra.big", {"dtype": "F32", "shape": [4611686018427387905]}, b"\0" * 4),
      expect=ST)
    E("st_shape_2pow62p1_in_4_bytes_generate", gen(model=M_),
      setup=with_extra("extra.big", {"dtype": "F32", "shape": [4611686018427387905]}, b"\0" * 4),
      expect=ST)
    E("st_shape_2d_wraps_to_zero", ["inspect", M_],
      setup=with_extra("extra.wrap", {"dtype": "U8", "shape": [1 << 32, 1 << 32]}, b""), expect=ST)
    E("st_offsets_past_end", ["inspect", M_],
      setup=set_entry("model.norm.weight", data_offsets=[19510000, 19511024]), expect=ST)
    E("st_offsets_reversed", gen(model=M_),
      setup=set_entry("model.norm.weight", data_offsets=[1024, 0]), expect=ST)
    E("st_offsets_three_values", ["inspect", M_],
      setup=set_entry("model.norm.weight", data_offsets=[0, 1024, 2048]), expect=ST)
    E("st_offsets_size_mismatch", gen(model=M_),
      setup=set_entry("model.norm.weight", data_offsets=[0, 1020]), expect=ST)
    E("st_offsets_negative", ["inspect", M_],
      setup=set_entry("model.norm.weight", data_offsets=[-1024, 0]), expect=ST)
    E("st_offsets_2pow64_wrap", ["inspect", M_],
      setup=set_entry("model.norm.weight", data_offsets=[(1 << 64) - 512, 512]), expect=ST)
    E("st_entry_not_object", gen(model=M_), setup=set_entry_raw("model.norm.weight", 5), expect=ST)
    E("st_missing_tensor", gen(model=M_),
      setup=st_edit_model(lambda n, e, b: None if n == "model.layers.1.mlp.up_proj.weight" else (e, b)),
      expect="model.layers.1.mlp.up_proj.weight")
    E("st_wrong_shape", gen(model=M_),
      setup=st_edit_model(lambda n, e, b: (dict(e, shape=[64, 256]), b[:len(b) // 2])
                          if n == "model.layers.0.self_attn.k_proj.weight" else (e, b)),
      expect=ST)
    E("st_truncated_half", gen(model=M_), setup=st_raw_model(lambda raw: raw[:len(raw) // 2]), expect=ST)
    E("st_truncated_half_inspect", ["inspect", M_], setup=st_raw_model(lambda raw: raw[:len(raw) // 2]),
      expect=ST)
    E("st_truncated_last_byte_train", train(model=M_), setup=st_raw_model(lambda raw: raw[:-1]),
      expect=ST)
    E("st_is_directory", gen(model=M_),
      setup=lambda c, w: (os.remove(c.model_dir(w) + "/model.safetensors"),
                          os.makedirs(os.path.join(w, "m", "model.safetensors"))), expect=ST)

    def st_devzero(c, w):
        d = c.model_dir(w)
        os.remove(d + "/model.safetensors")
        os.symlink("/dev/zero", d + "/model.safetensors")
    E("st_symlink_dev_zero", ["inspect", M_], setup=st_devzero, expect=ST)

    # sharded index
    def index(text, drop_single=True):
        def f(c, w):
            d = c.model_dir(w)
            if drop_single:
                os.remove(d + "/model.safetensors")
            spit(d + "/model.safetensors.index.json", text)
        return f
    IDX = "{W}/m/model.safetensors.index.json"
    E("index_deep", gen(model=M_), setup=index('{"weight_map": ' + deep() + "}"), expect=IDX)
    E("index_not_json", gen(model=M_), setup=index("weight_map: none"), expect=IDX)
    E("index_shard_missing", gen(model=M_),
      setup=index(json.dumps({"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}})),
      expect=IDX)
    E("index_weight_map_wrong_type", gen(model=M_), setup=index(json.dumps({"weight_map": [1, 2]})),
      expect=IDX)
    E("index_incomplete_weight_map", gen(model=M_),
      setup=index(json.dumps({"weight_map": {"model.norm.weight": "model.safetensors"}}), drop_single=False),
      expect="{W}/m")

    def escaping_index(c, w):
        names = [n for n in st_split(c.st)[0] if n != "__metadata__"]
        wm = {n: "model.safetensors" for n in names}
        wm["model.norm.weight"] = "../../../../../../../../etc/passwd"
        index(json.dumps({"weight_map": wm}), drop_single=False)(c, w)
    E("index_shard_escapes_dir", gen(model=M_), setup=escaping_index, expect="etc/passwd")

    # ---- tokenizer.model in the model directory ---------------------------------------
    TOK = "{W}/m/tokenizer.model"
    E("tokenizer_corrupt_generate", gen(model=M_, prompt="hello"),
      setup=model(tokenizer=bytes((i * 31 + 7) % 256 for i in range(4096))), expect=TOK)
    E("tokenizer_empty_generate", gen(model=M_, prompt="hello"), setup=model(tokenizer=b""), expect=TOK)
    E("tokenizer_corrupt_train", train(model=M_), setup=model(tokenizer=b"\x0a\x05hello"), expect=TOK)
    E("tokenizer_corrupt_eval", evaluate(model=M_), setup=model(tokenizer=b"not a sentencepiece model"),
      expect=TOK)
    E("tokenizer_missing_prompt", gen(model=M_, prompt="hello"), setup=model(tokenizer=None),
      expect="tokenizer.model")

    def tok_dir(c, w):
        d = c.model_dir(w, tokenizer=None)
        os.makedirs(d + "/tokenizer.model")
    E("tokenizer_is_directory", gen(model=M_, prompt="hello"), setup=tok_dir, expect=TOK)

    # ---- generate options --------------------------------------------------------------
    E("gen_top_k_neg5", gen(top_k="-5"), expect="--top-k")
    E("gen_temperature_1e-300", gen(temperature="1e-300"), expect="--temperature")
    for v in ["inf", "nan", "-1", "1e300"]:
        E("gen_temperature_" + v.replace("-", "neg"), gen(temperature=v), expect="--temperature")
    for v in ["0", "nan", "2", "-0.5", "inf"]:
        E("gen_top_p_" + v.replace("-", "neg").replace(".", "p"), gen(top_p=v), expect="--top-p")
    for v in ["0", "-1", "1099511627776", "abc"]:
        E("gen_max_new_tokens_" + v.replace("-", "neg"), gen(max_new_tokens=v), expect="--max-new-tokens")
    E("gen_ids_not_numbers", gen(ids="1,x,3"), expect="--ids")
    E("gen_ids_empty_element", gen(ids="1,,3"), expect="--ids")
    E("gen_ids_outside_vocab", gen(ids="1,99999"), expect="99999")
    E("gen_ids_negative", gen(ids="1,-7"), expect="-7")
    E("gen_ids_int64_overflow", gen(ids="1,99999999999999999999"), expect="--ids")
    E("gen_seed_not_number", gen(seed="seed"), expect="--seed")
    E("gen_threads_not_number", gen(threads="two"), expect="--threads")
    E("gen_dtype_bogus", gen(dtype="int4"), expect="--dtype")
    E("gen_device_bogus", gen(device="abacus"), expect="--device")
    E("gen_unknown_option", gen(raw=["--beam-width", "4"]), expect="--beam-width")
    E("gen_missing_model", gen(model=DROP), expect="--model")
    E("gen_adapter_missing", gen(adapter="{W}/nothere"), expect="{W}/nothere")
    E("gen_adapter_config_deep", gen(adapter="{W}/ad"),
      setup=adapter(cfg_text='{"peft_type": "LORA", "r": 8, "lora_alpha": ' + deep() + "}"),
      expect="{W}/ad/adapter_config.json")
    E("gen_prompt_without_tokenizer", gen(model=M_, prompt="hi"), setup=model(tokenizer=None),
      expect="tokenizer.model")

    # ---- inspect ---------------------------------------------------------------------
    E("inspect_no_path", ["inspect"], expect="path")
    E("inspect_two_paths", ["inspect", "{M}", "{W}/extra"], expect="{W}/extra")
    E("inspect_unknown_option", ["inspect", "{M}", "--deep"], expect="--deep")
    E("inspect_missing_dir", ["inspect", "{W}/nothere"], expect="{W}/nothere")
    E("inspect_regular_file", ["inspect", "{D}"], expect="{D}")
    E("inspect_missing_config", ["inspect", M_],
      setup=lambda c, w: os.remove(c.model_dir(w) + "/config.json"), expect="{W}/m")

    # ---- eval --------------------------------------------------------------------------
    AD = "{W}/ad"
    ADC = "{W}/ad/adapter_config.json"
    ADW = "{W}/ad/adapter_model.safetensors"
    E("eval_missing_data", evaluate(data="{W}/none.jsonl"), expect="{W}/none.jsonl")
    E("eval_data_dev_zero", evaluate(data="/dev/zero"), expect="/dev/zero")
    E("eval_data_deep", evaluate(data="{W}/x.jsonl"), setup=data_file(deep() + "\n"), expect="{W}/x.jsonl")
    E("eval_data_invalid_utf8", evaluate(data="{W}/x.jsonl"),
      setup=data_file(b'{"text": "\xc3\x28 broken"}\n'), expect="{W}/x.jsonl:1")
    E("eval_data_all_empty_rows", evaluate(data="{W}/x.jsonl"),
      setup=data_file(jsonl([{"instruction": "", "input": "", "output": ""}] * 8)), expect="{W}/x.jsonl")
    E("eval_micro_batch_0", evaluate(micro_batch="0"), expect="--micro-batch")
    E("eval_micro_batch_huge", evaluate(micro_batch="17179869184"), expect="--micro-batch")
    E("eval_max_length_1", evaluate(max_length="1"), expect="--max-length")
    E("eval_max_length_2pow40", evaluate(max_length="1099511627776"), expect="--max-length")
    E("eval_unknown_option", evaluate(raw=["--lr", "1"]), expect="--lr")
    E("eval_missing_model", evaluate(model=DROP), expect="--model")
    E("eval_adapter_missing_dir", evaluate(adapter="{W}/nothere"), expect="{W}/nothere")
    E("eval_adapter_is_file", evaluate(adapter="{D}"), expect="{D}")
    E("eval_adapter_no_config", evaluate(adapter=AD),
      setup=lambda c, w: os.remove(c.adapter_dir(w) + "/adapter_config.json"), expect=ADC)
    E("eval_adapter_config_not_json", evaluate(adapter=AD), setup=adapter(cfg_text="r = 8"), expect=ADC)
    E("eval_adapter_config_array", evaluate(adapter=AD), setup=adapter(cfg_text="[8]"), expect=ADC)
    E("eval_adapter_config_deep_lora_alpha", evaluate(adapter=AD),
      setup=lambda c, w: c.adapter_dir(w, cfg_text=slurp(c.adapter + "/adapter_config.json").decode()
                                       .replace('"lora_alpha": 16', '"lora_alpha": ' + deep())),
      expect=ADC)

    def ad_cfg(tag, edit, expect=ADC):
        E("eval_adapter_" + tag, evaluate(adapter=AD), setup=adapter(cfg=edit), expect=expect)
    ad_cfg("r_mismatch", set_cfg(r=16), expect="{W}/ad")
    ad_cfg("r_zero", set_cfg(r=0))
    ad_cfg("r_string", set_cfg(r="8"))
    ad_cfg("r_huge", set_cfg(r=1 << 40))
    ad_cfg("alpha_string", set_cfg(lora_alpha="sixteen"))
    ad_cfg("alpha_negative", set_cfg(lora_alpha=-16))
    ad_cfg("dropout_2", set_cfg(lora_dropout=2.0))
    ad_cfg("peft_type_prefix", set_cfg(peft_type="PREFIX_TUNING"))
    ad_cfg("peft_type_missing", set_cfg(peft_type=DROP))
    ad_cfg("bias_all", set_cfg(bias="all"))
    ad_cfg("fan_in_fan_out", set_cfg(fan_in_fan_out=True))
    ad_cfg("use_dora", set_cfg(use_dora=True))
    ad_cfg("rank_pattern", set_cfg(rank_pattern={"q_proj": 4}))
    ad_cfg("target_unknown", set_cfg(target_modules=["foo_proj"]))
    ad_cfg("target_regex_bad", set_cfg(target_modules="(((q_proj"))
    ad_cfg("target_number", set_cfg(target_modules=5))
    ad_cfg("target_missing", set_cfg(target_modules=DROP))
    ad_cfg("target_more_than_weights", set_cfg(target_modules=["q_proj", "k_proj", "v_proj"]),
           expect="{W}/ad")
    E("eval_adapter_no_weights", evaluate(adapter=AD), setup=adapter(weights=False), expect=ADW)

    def bin_only(c, w):
        d = c.adapter_dir(w, weights=False)
        spit(d + "/adapter_model.bin", b"PK\x03\x04 pickle")
    E("eval_adapter_weights_bin_only", evaluate(adapter=AD), setup=bin_only, expect=ADW)
    E("eval_adapter_weights_wrong_shape", evaluate(adapter=AD),
      setup=adapter(st_edit=lambda n, e, b: (dict(e, shape=[e["shape"][0] // 2, e["shape"][1]]), b[:len(b) // 2])
                    if n.endswith("layers.0.self_attn.q_proj.lora_A.weight") else (e, b)),
      expect=ADW)
    E("eval_adapter_weights_missing_tensor", evaluate(adapter=AD),
      setup=adapter(st_edit=lambda n, e, b: None if "layers.3." in n and "lora_B" in n else (e, b)),
      expect=ADW)
    E("eval_adapter_weights_unexpected_key", evaluate(adapter=AD),
      setup=lambda c, w: c.adapter_dir(w, st=add_tensor(slurp(c.adapter + "/adapter_model.safetensors"),
                                                        "base_model.model.lm_head.weight", "F32", [4], b"\0" * 16)),
      expect=ADW)
    E("eval_adapter_weights_layer_beyond_model", evaluate(adapter=AD),
      setup=lambda c, w: c.adapter_dir(w, st=rename_layer(slurp(c.adapter + "/adapter_model.safetensors"), 5, 99)),
      expect=ADW)
    E("eval_adapter_weights_truncated", evaluate(adapter=AD),
      setup=lambda c, w: c.adapter_dir(w, st=slurp(c.adapter + "/adapter_model.safetensors")[:-100]),
      expect=ADW)
    E("eval_adapter_weights_empty_header", evaluate(adapter=AD), setup=adapter(st=st_join({}, b"")),
      expect=ADW)
    E("eval_adapter_weights_metadata_deep", evaluate(adapter=AD),
      setup=lambda c, w: c.adapter_dir(w, st=st_join('{"__metadata__":' + deep() + "}", b"")),
      expect=ADW)
    E("eval_adapter_weights_shape_overflow", evaluate(adapter=AD),
      setup=lambda c, w: c.adapter_dir(w, st=add_tensor(slurp(c.adapter + "/adapter_model.safetensors"),
                                                        "x.big", "F32", [4611686018427387905], b"\0" * 4)),
      expect=ADW)

    # ---- export ------------------------------------------------------------------------
    def base_copy(c, w):
        d = c.model_dir(w, "base", copy=True)
        c.case_digest[w] = hashlib.sha256(slurp(d + "/model.safetensors")).hexdigest()

    def base_kept(c, w):
        p = os.path.join(w, "base", "model.safetensors")
        if not os.path.isfile(p):
            return "%s is gone" % p
        if hashlib.sha256(slurp(p)).hexdigest() != c.case_digest.get(w):
            return "%s was overwritten" % p
        for f in ("config.json", "tokenizer.model"):
            if not os.path.isfile(os.path.join(w, "base", f)):
                return "%s/base/%s is gone" % (w, f)
        return None
    E("export_merge_into_base_dir", export(model="{W}/base", out=DROP, merge="{W}/base"),
      setup=base_copy, expect="--merge", post=base_kept)
    E("export_merge_into_base_dir_force", export(model="{W}/base", out=DROP, merge="{W}/base", force=True),
      setup=base_copy, expect="--merge", post=base_kept)

    def base_link(c, w):
        base_copy(c, w)
        os.symlink(os.path.join(w, "base"), os.path.join(w, "alias"))
    E("export_merge_into_base_via_symlink", export(model="{W}/base", out=DROP, merge="{W}/alias"),
      setup=base_link, expect="--merge", post=base_kept)
    E("export_merge_into_base_dotted_path", export(model="{W}/base", out=DROP, merge="{W}/base/../base/."),
      setup=base_copy, expect="--merge", post=base_kept)

    def nonempty(c, w):
        spit(os.path.join(w, "dst", "keep.txt"), "precious")

    def kept(c, w):
        p = os.path.join(w, "dst", "keep.txt")
        return None if os.path.isfile(p) and slurp(p) == b"precious" else "%s was removed or changed" % p
    E("export_merge_nonempty_dir", export(out=DROP, merge="{W}/dst"), setup=nonempty, expect="--merge",
      post=kept)
    E("export_out_nonempty_dir", export(out="{W}/dst"), setup=nonempty, expect="--out", post=kept)

    def ad_copy(c, w):
        d = c.adapter_dir(w)
        c.case_digest[w] = hashlib.sha256(slurp(d + "/adapter_model.safetensors")).hexdigest()

    def ad_kept(c, w):
        p = os.path.join(w, "ad", "adapter_model.safetensors")
        ok = os.path.isfile(p) and hashlib.sha256(slurp(p)).hexdigest() == c.case_digest.get(w)
        return None if ok else "%s was overwritten or removed" % p
    E("export_out_is_the_adapter", export(adapter=AD, out=AD), setup=ad_copy, expect="--out", post=ad_kept)
    E("export_out_is_the_adapter_force", export(adapter=AD, out=AD, force=True), setup=ad_copy,
      expect="--out", post=ad_kept)
    E("export_merge_into_adapter", export(adapter=AD, out=DROP, merge=AD), setup=ad_copy,
      expect="--merge", post=ad_kept)
    E("export_merge_is_a_file", export(out=DROP, merge="{W}/f"), setup=writes("f", "x"), expect="{W}/f")
    E("export_out_under_a_file", export(out="{W}/f/sub"), setup=writes("f", "x"), expect="{W}/f")
    E("export_merge_dtype_bogus", export(out=DROP, merge="{W}/mg", dtype="fp16"), expect="--dtype",
      post=absent("mg"))
    E("export_no_output", export(out=DROP), expect="--out")
    E("export_missing_adapter_option", export(adapter=DROP), expect="--adapter")
    E("export_adapter_missing_dir", export(adapter="{W}/nothere"), expect="{W}/nothere", post=absent("exp"))
    E("export_model_missing_dir", export(model="{W}/nothere"), expect="{W}/nothere", post=absent("exp"))
    E("export_adapter_r_mismatch", export(adapter=AD), setup=adapter(cfg=set_cfg(r=4)), expect="{W}/ad",
      post=absent("exp"))
    E("export_adapter_wrong_shape", export(adapter=AD, out=DROP, merge="{W}/mg"),
      setup=adapter(st_edit=lambda n, e, b: (dict(e, shape=[e["shape"][0], e["shape"][1] // 2]), b[:len(b) // 2])
                    if n.endswith("layers.2.self_attn.v_proj.lora_B.weight") else (e, b)),
      expect=ADW, post=absent("mg"))
    E("export_adapter_config_deep", export(adapter=AD),
      setup=adapter(cfg_text='{"peft_type": "LORA", "r": ' + deep() + "}"), expect=ADC)
    E("export_model_other_geometry", export(model=M_, out=DROP, merge="{W}/mg"),
      setup=model(cfg=set_cfg(num_hidden_layers=4)), expect="{A}", post=absent("mg"))
    E("export_unknown_option", export(raw=["--overwrite"]), expect="--overwrite")

    # ---- abm-init -----------------------------------------------------------------------
    for opt, v in [("abm-margin", "nan"), ("abm-margin", "inf"), ("abm-margin", "-0.5"),
                   ("abm-lr", "inf"), ("abm-lr", "0"), ("abm-lr", "1e30"), ("abm-samples", "0"),
                   ("abm-samples", "-4"), ("abm-steps", "-1"), ("abm-weight-decay", "inf"),
                   ("abm-max-length", "1"), ("abm-micro-batch", "0"), ("abm-scope", "everything"),
                   ("abm-layers", "last:x"), ("abm-layers", "0,99"), ("abm-layers", "1.5"),
                   ("abm-stages", "3"), ("abm-batch", "17179869184")]:
        E("abm_%s_%s" % (opt[4:].replace("-", "_"), re.sub(r"\W", "_", v.replace("-", "neg"))),
          abm_init(**{opt: v}), expect="--" + opt)
    E("abm_recompute_one_stage", abm_init(abm_recompute=True, abm_stages="1"), expect="--abm-recompute")
    E("abm_weight_dtype_bogus", abm_init(weight_dtype="fp4"), expect="--weight-dtype")
    E("abm_teacher_missing", abm_init(teacher_adapter="{W}/nothere"), expect="{W}/nothere")
    E("abm_teacher_config_deep", abm_init(teacher_adapter=AD),
      setup=adapter(cfg_text='{"peft_type": "LORA", "lora_alpha": ' + deep() + "}"), expect=ADC)
    E("abm_data_missing", abm_init(data="{W}/none.jsonl"), expect="{W}/none.jsonl")
    E("abm_data_deep", abm_init(data="{W}/x.jsonl"), setup=data_file(deep() + "\n"), expect="{W}/x.jsonl")
    E("abm_data_all_empty", abm_init(data="{W}/x.jsonl"),
      setup=data_file(jsonl([{"instruction": "", "input": "", "output": ""}] * 8)), expect="{W}/x.jsonl")
    E("abm_data_dev_zero", abm_init(data="/dev/zero"), expect="/dev/zero")
    E("abm_lora_r_huge", abm_init(lora_r="1099511627776"), expect="--lora-r")
    E("abm_model_missing", abm_init(model="{W}/nothere"), expect="{W}/nothere")
    E("abm_unknown_option", abm_init(raw=["--abm-magic", "1"]), expect="--abm-magic")
    E("abm_st_metadata_deep", abm_init(model=M_), setup=st_raw_model(meta_deep), expect=ST)

    # ---- info-loss ---------------------------------------------------------------------
    E("info_loss_adapter_missing", info_loss(adapter="{W}/nothere"), expect="{W}/nothere")
    E("info_loss_adapter_r_mismatch", info_loss(adapter=AD), setup=adapter(cfg=set_cfg(r=2)), expect="{W}/ad")
    E("info_loss_data_deep", info_loss(data="{W}/x.jsonl"), setup=data_file(deep() + "\n"), expect="{W}/x.jsonl")
    E("info_loss_global_batch_huge", info_loss(global_batch="99999999999"), expect="--global-batch")
    E("info_loss_lr_nan", info_loss(lr="nan"), expect="--lr")
    E("info_loss_json_is_dir", info_loss(json="{W}/jd"), setup=writes("jd/x", "x"), expect="{W}/jd")

    # ---- train --resume: checkpoints ----------------------------------------------------
    CK = "{W}/ck.h5"

    def ckpt(edit=None, src="ckpt1"):
        """setup: W/ck.h5 = a copy of the fixture's checkpoint, edited by edit(path, ctx)."""
        def f(c, w):
            p = os.path.join(w, "ck.h5")
            shutil.copy(c.ckpt1 if src == "ckpt1" else c.ckpt2, p)
            if edit:
                edit(p, c)
        return f

    def resume(**over):
        return train(resume=CK, **over)

    E("resume_missing_file", train(resume="{W}/none.h5"), expect="{W}/none.h5")
    E("resume_empty_file", resume(), setup=writes("ck.h5", b""), expect=CK)
    E("resume_text_file", resume(), setup=writes("ck.h5", "not a checkpoint\n"), expect=CK)
    E("resume_dev_zero", train(resume="/dev/zero"), expect="/dev/zero")
    E("resume_dir_without_checkpoints", train(resume="{W}/cd"), setup=writes("cd/x", "x"), expect="{W}/cd")

    def trunc(frac):
        def e(p, c):
            n = os.path.getsize(p)
            with open(p, "r+b") as f:
                f.truncate(int(n * frac))
        return e
    E("resume_truncated_half", resume(), setup=ckpt(trunc(0.5)), expect=CK, needs=["r0"])
    E("resume_truncated_90pct", resume(), setup=ckpt(trunc(0.9)), expect=CK, needs=["r0"])
    E("resume_truncated_to_superblock", resume(), setup=ckpt(lambda p, c: os.truncate(p, 96)), expect=CK,
      needs=["r0"])

    def flip_in_adapter_data(p, c):
        # A byte inside /adapter/<module>/lora_B: its bytes are the fixture adapter's at step 1;
        # find lora_A of step 1 through the file: pick a long run that is not zeros.
        raw = bytearray(slurp(p))
        i = c.ckpt_data_offset
        raw[i] ^= 0x40
        spit(p, bytes(raw))
    E("resume_flip_tensor_data", resume(), setup=ckpt(flip_in_adapter_data), expect=CK, needs=["r0", "ckoff"])
    E("resume_format_version_99", resume(),
      setup=ckpt(lambda p, c: h5patch.set_i64_attr(p, "/", "format_version", 99)), expect=CK, needs=["r0"])
    E("resume_format_version_99_unsealed", resume(),
      setup=ckpt(lambda p, c: h5patch.set_i64_attr(p, "/", "format_version", 99, reseal=False)),
      expect=CK, needs=["r0"])
    E("resume_format_not_abmlora", resume(),
      setup=ckpt(lambda p, c: h5patch.set_str_attr(p, "/", "format", "hdf5-other")), expect=CK, needs=["r0"])
    E("resume_attrs_checksum_mismatch", resume(),
      setup=ckpt(lambda p, c: h5patch.set_i64_attr(p, "/", "global_batch", 4, reseal=False) or
                 h5patch.set_str_attr(p, "/", "created", "tampered", reseal=False)), expect=CK, needs=["r0"])
    E("resume_negative_step", resume(),
      setup=ckpt(lambda p, c: h5patch.set_i64_attr(p, "/", "step", -5)), expect=CK, needs=["r0"])
    E("resume_trainable_unknown", resume(),
      setup=ckpt(lambda p, c: h5patch.set_str_attr(p, "/", "trainable", "everything")), expect=CK, needs=["r0"])
    E("resume_lora_config_deep", resume(),
      setup=ckpt(lambda p, c: h5patch.set_str_attr(p, "/", "lora_config", deep())), expect=CK, needs=["r0"])
    E("resume_lora_config_not_json", resume(),
      setup=ckpt(lambda p, c: h5patch.set_str_attr(p, "/", "lora_config", "{r: 8")), expect=CK, needs=["r0"])
    E("resume_lora_config_r_string", resume(),
      setup=ckpt(lambda p, c: h5patch.set_str_attr(
          p, "/", "lora_config", '{"r":"8","alpha":16,"dropout":0,"rslora":false,"targets":["q_proj"],"init":"kaiming","seed":0}')),
      expect=CK, needs=["r0"])
    E("resume_rng_dims_256pow8", resume(),
      setup=ckpt(lambda p, c: h5patch.redim(p, "/rng/torch_cpu", [256] * 8)), expect=CK, needs=["r0"])
    E("resume_rng_dims_2pow62", resume(),
      setup=ckpt(lambda p, c: h5patch.redim(p, "/rng/torch_cpu", [1 << 62])), expect=CK, needs=["r0"])
    E("resume_adapter_dims_wrap", resume(),
      setup=ckpt(lambda p, c: h5patch.redim(p, c.ckpt_lora_a, [1 << 32, 1 << 32])), expect=CK,
      needs=["r0", "ckmod"])
    E("resume_adapter_dims_other_shape", resume(),
      setup=ckpt(lambda p, c: h5patch.redim(p, c.ckpt_lora_a, [3, 5])), expect=CK, needs=["r0", "ckmod"])

    def all_damaged(c, w):
        d = os.path.join(w, "run", "checkpoints")
        os.makedirs(d)
        for s in (1, 2):
            spit(os.path.join(d, "ckpt-%08d.h5" % s), slurp(c.ckpt1)[:4096])
        spit(os.path.join(d, "latest"), "ckpt-00000002.h5")
    E("resume_auto_all_damaged", train(resume="auto"), setup=all_damaged, expect="{W}/run/checkpoints",
      needs=["r0"])
    E("resume_dir_all_damaged", train(resume="{W}/run/checkpoints"), setup=all_damaged,
      expect="{W}/run/checkpoints", needs=["r0"])
    # another run's checkpoint
    E("resume_other_lora_r", train(resume="{C2}", lora_r="4"), expect="{C2}")
    E("resume_other_lora_alpha", train(resume="{C2}", lora_alpha="32"), expect="{C2}")
    E("resume_other_targets", train(resume="{C2}", lora_targets="all-linear"), expect="{C2}")
    E("resume_other_dropout", train(resume="{C2}", lora_dropout="0.1"), expect="{C2}")
    E("resume_other_global_batch", train(resume="{C2}", global_batch="8"), expect="{C2}")
    E("resume_other_seed", train(resume="{C2}", seed="7"), expect="{C2}")
    E("resume_other_data", train(resume="{C2}", data="{W}/x.jsonl"),
      setup=data_file(jsonl([dict(GOOD_ROW, output="h i j k")] * 64)), expect="{C2}")
    E("resume_other_model", train(resume="{C2}", model=M_), setup=model(cfg=set_cfg(rms_norm_eps=1e-6)),
      expect="{C2}")
    E("resume_full_vs_lora", ["pretrain"] + train(resume="{C2}")[1:], expect="{C2}")

    # ---- report (reads metrics.jsonl and abm.json) --------------------------------------
    def run_dir(metrics=None, abm=None):
        def f(c, w):
            d = os.path.join(w, "rr")
            os.makedirs(d)
            spit(d + "/metrics.jsonl", metrics if metrics is not None else slurp(c.run0 + "/metrics.jsonl"))
            shutil.copy(c.run0 + "/config.ini", d)
            if abm is not None:
                spit(d + "/abm.json", abm)
        return f
    RM = "{W}/rr/metrics.jsonl"
    E("report_missing_run", ["report", "{W}/nothere", "--out", "{W}/rep"], expect="{W}/nothere")
    E("report_metrics_deep", ["report", "{W}/rr", "--out", "{W}/rep"], setup=run_dir(deep() + "\n"),
      expect=RM, needs=["r0"])
    E("report_metrics_not_json", ["report", "{W}/rr", "--out", "{W}/rep"], setup=run_dir("{step: 1\n"),
      expect=RM, needs=["r0"])
    E("report_metrics_step_string", ["report", "{W}/rr", "--out", "{W}/rep"],
      setup=run_dir('{"step": "one", "loss": 1.0}\n'), expect=RM, needs=["r0"])
    E("report_metrics_loss_object", ["report", "{W}/rr", "--out", "{W}/rep"],
      setup=run_dir('{"step": 1, "loss": {"a": 1}}\n'), expect=RM, needs=["r0"])
    E("report_abm_json_deep", ["report", "{W}/rr", "--out", "{W}/rep"], setup=run_dir(abm=deep()),
      expect="{W}/rr/abm.json", needs=["r0"])
    E("report_scaling_metrics_deep", ["report", "--scaling", "{W}/rr", "--out", "{W}/rep"],
      setup=run_dir(deep() + "\n"), expect=RM, needs=["r0"])
    E("report_scaling_tokens_string", ["report", "--scaling", "{W}/rr", "--out", "{W}/rep"],
      setup=run_dir('{"step": 1, "tokens_per_s": "fast", "ranks": 1}\n'), expect=RM, needs=["r0"])
    E("report_at_bogus", ["report", "{R0}", "--at", "x,y", "--out", "{W}/rep"], expect="--at")

    # ---- must not crash (exit 0 or 2) ---------------------------------------------------
    def stray(raw):
        h, data = st_split(raw)
        h["model.layers.x.foo"] = {"dtype": "F32", "shape": [1], "data_offsets": [len(data), len(data) + 4]}
        return st_join(h, data + b"\0" * 4)
    N("nc_inspect_stray_tensor_name", ["inspect", M_], setup=st_raw_model(stray))
    N("nc_generate_stray_tensor_name", gen(model=M_), setup=st_raw_model(stray))
    N("nc_st_metadata_number", ["inspect", M_],
      setup=st_raw_model(lambda raw: st_join(
          json.dumps(st_split(raw)[0], separators=(",", ":")).replace('"__metadata__":{"format":"pt"}',
                                                                       '"__metadata__":5'), st_split(raw)[1])))
    N("nc_st_overlapping_tensors", gen(model=M_),
      setup=set_entry("model.layers.0.post_attention_layernorm.weight", data_offsets=[2097152, 2098176]))
    N("nc_st_weight_stored_f64", gen(model=M_),
      setup=st_edit_model(lambda n, e, b: (dict(e, dtype="F64"),
                                           struct.pack("<%dd" % (len(b) // 4), *struct.unpack("<%df" % (len(b) // 4), b)))
                          if n == "model.norm.weight" else (e, b)))
    N("nc_eval_nan_weights", evaluate(model=M_, data="{W}/x.jsonl"),
      setup=all_of(st_edit_model(nan_norm), data_file(jsonl([GOOD_ROW] * 4))))
    N("nc_generate_past_max_positions", gen(max_new_tokens="300"))
    N("nc_data_10mb_line_truncate", train(data="{W}/x.jsonl", truncate=True, steps="1"),
      setup=data_file(lambda: jsonl([dict(GOOD_ROW, output="word " * 2000000)] + [GOOD_ROW] * 7)))
    # the token cache is an optimization: an unusable --cache-dir may be reported and skipped
    N("nc_train_cache_dir_is_file", train(cache_dir="{W}/f", steps="1", global_batch="2"),
      setup=writes("f", "x"))
    N("nc_data_nul_escaped", evaluate(data="{W}/x.jsonl"),
      setup=data_file(jsonl([dict(GOOD_ROW, output="a\u0000b")] * 4)))
    N("nc_data_bom", evaluate(data="{W}/x.jsonl"), setup=data_file(b"\xef\xbb\xbf" + jsonl([GOOD_ROW] * 4).encode()))
    N("nc_resume_latest_points_outside", train(resume="auto", steps="1", global_batch="2"),
      setup=lambda c, w: spit(os.path.join(w, "run", "checkpoints", "latest"), "../../../../etc/passwd"))
    for k in range(12):
        def flip(p, c, k=k):
            raw = bytearray(slurp(p))
            i = (len(raw) * (2 * k + 1)) // 24  # 12 offsets spread over the file
            raw[i] ^= 0xFF
            spit(p, bytes(raw))
        N("nc_resume_byte_flip_%02d" % k, resume(), setup=ckpt(flip), needs=["r0"])

    # ---- positive controls (exit 0) ------------------------------------------------------
    OK("ok_inspect_model", ["inspect", "{M}"])
    OK("ok_generate", gen())
    OK("ok_eval_adapter", evaluate(adapter="{A}", data="{W}/x.jsonl"), setup=data_file(jsonl([GOOD_ROW] * 8)))
    OK("ok_resume_ckpt1", train(resume="{C1}"))
    OK("ok_export_merge", export(out=DROP, merge="{W}/mg"))


def set_entry_raw(tensor, value):
    def make(raw):
        h, data = st_split(raw)
        h[tensor] = value
        return st_join(h, data)

    def f(c, w):
        c.model_dir(w, "m", st=make(c.st))
    return f


def add_tensor(raw, name, dtype, shape, data_bytes):
    h, data = st_split(raw)
    h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(data_bytes)]}
    return st_join(h, data + data_bytes)


def rename_layer(raw, old, new):
    h, data = st_split(raw)
    out = {}
    for k, v in h.items():
        out[k.replace("layers.%d." % old, "layers.%d." % new)] = v
    return st_join(out, data)


# ---------------------------------------------------------------------------------------
# Fixtures


def make_fixtures(ctx, log):
    os.makedirs(ctx.fix, exist_ok=True)
    os.makedirs(ctx.model)
    for f in ("config.json", "model.safetensors", "tokenizer.model"):
        shutil.copy(os.path.join(ctx.src, "models", "default", f), ctx.model)
    ctx.model_sha = hashlib.sha256(slurp(os.path.join(ctx.model, "model.safetensors"))).hexdigest()
    spit(ctx.data, jsonl([GOOD_ROW] * 64))
    # One real short training run (always 1 rank): adapter, checkpoints at steps 1 and 2.
    args = [ctx.bin] + [ctx.subst(a, ctx.fix) for a in
                        train(out="{R0}", checkpoint_every="1")]
    t0 = time.time()
    r = subprocess.run(args, env=ctx.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300, cwd=ctx.work)
    ok = (r.returncode == 0 and os.path.isfile(ctx.ckpt1) and os.path.isfile(ctx.ckpt2)
          and os.path.isfile(os.path.join(ctx.adapter, "adapter_model.safetensors")))
    log("fixture r0: %s in %.1fs (%s)" % ("ok" if ok else "FAILED", time.time() - t0, " ".join(args)))
    if not ok:
        tail = r.stdout.decode(errors="replace").splitlines()[-10:]
        ctx.fixture_error["r0"] = "fixture training run failed (exit %d): %s" % (r.returncode, " | ".join(tail))
        for line in tail:
            log("    | " + line)
        return
    # Where the checkpoint's adapter data lives, and one lora_A dataset's path.
    try:
        mods = h5patch.dataset_names(ctx.ckpt1, "/adapter")
        ctx.ckpt_lora_a = "/adapter/%s/lora_A" % mods[0]
    except Exception as e:  # noqa: BLE001
        ctx.fixture_error["ckmod"] = "cannot list /adapter of %s: %s" % (ctx.ckpt1, e)
    try:
        ctx.ckpt_data_offset = find_tensor_bytes(ctx)
    except Exception as e:  # noqa: BLE001
        ctx.fixture_error["ckoff"] = "cannot locate adapter bytes in %s: %s" % (ctx.ckpt1, e)


def find_tensor_bytes(ctx):
    """Offset of a byte inside a checkpoint dataset's data: lora_B is zero at init, so after
    one step the checkpoint's lora_A of the first module is its init; find the first 64
    bytes of the step-1 adapter's lora_A by reading the HDF5 dataset through ctypes."""
    L = h5patch.lib()
    f = h5patch.File(ctx.ckpt1)
    try:
        ds = L.H5Dopen2(f.id, ctx.ckpt_lora_a.encode(), 0)
        if ds < 0:
            raise RuntimeError("H5Dopen2")
        get_offset = L.H5Dget_offset
        get_offset.restype = ctypes_u64()
        get_offset.argtypes = [h5patch.hid_t]
        off = get_offset(ds)
        L.H5Dclose(ds)
    finally:
        f.close()
    if off == (1 << 64) - 1:
        raise RuntimeError("no contiguous storage")
    return off + 17


def ctypes_u64():
    import ctypes
    return ctypes.c_uint64


# ---------------------------------------------------------------------------------------
# Running one case


class Result:
    def __init__(self, case):
        self.case = case
        self.ok = False
        self.reason = ""
        self.seconds = 0.0
        self.rc = None
        self.rss_kib = 0
        self.lines = []
        self.noise = []
        self.cmd = []
        self.text = ""
        self.errors = []
        self.retried = ""


def run_case(ctx, case, keep):
    res = Result(case)
    w = os.path.join(ctx.work, "cases", case.name)
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    args = [ctx.subst(a, w) for a in case.args]
    res.cmd = ctx.launcher() + args
    missing = [n for n in case.needs if n in ctx.fixture_error]
    if missing:
        res.reason = "fixture missing: " + ctx.fixture_error[missing[0]]
        return res
    try:
        if case.setup:
            case.setup(ctx, w)
    except Exception as e:  # noqa: BLE001
        res.reason = "setup failed (corpus bug?): %s: %s" % (type(e).__name__, e)
        return res
    out_path = os.path.join(ctx.work, "cases", case.name + ".out")
    t0 = time.time()
    hang = False
    leftovers = False
    status = None
    maxrss = 0
    with open(out_path, "wb") as out:
        p = subprocess.Popen(res.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=ctx.env, cwd=w, start_new_session=True)
    # The case runs in its own session (sid = the launcher's pid). Open MPI puts each rank in
    # a process group of its own, but not in another session, so the session is what holds
    # everything the case started; reaping them all here (as their subreaper once the
    # launcher is gone) counts their peak RSS and leaves nothing running.
    sid = p.pid
    me = os.getpid()
    leader_done_at = None
    while True:
        progress = False
        for pid in [p.pid] if status is None else _session_children(sid, me):
            try:
                rpid, st, ru = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if rpid == 0:
                continue
            progress = True
            maxrss = max(maxrss, ru.ru_maxrss)
            if rpid == p.pid:
                status = st
                leader_done_at = time.time()
        now = time.time()
        if status is not None and not _session_members(sid):
            break
        if status is None and not hang and now - t0 > TIME_LIMIT_S:
            hang = True
            _kill_session(sid)
        elif status is not None and not leftovers and now - leader_done_at > 5:
            leftovers = True  # processes outlived the launcher by 5 s
            _kill_session(sid)
        elif hang and now - t0 > TIME_LIMIT_S + 30:
            break  # unkillable (D state): give up waiting
        if not progress:
            time.sleep(0.02)
    p.returncode = os.waitstatus_to_exitcode(status) if status is not None else -9
    res.seconds = time.time() - t0
    res.rc = p.returncode
    res.rss_kib = maxrss
    text = slurp(out_path).decode("utf-8", errors="replace")
    if not keep:
        os.remove(out_path)

    # Attribute lines to ranks (2 ranks: --tag-output), find errors, noise, crash markers.
    errors = []  # (rank or None, line)
    lines = []
    for raw in text.splitlines():
        m = TAG.match(raw)
        rank, line = (int(m.group(1)), m.group(3)) if m else (None, raw)
        lines.append((rank, line))
        if line.startswith("abmlora: error:"):
            errors.append((rank, line))
        elif rank is None and ctx.ranks > 1:
            for tag, needle in MPI_NOISE:
                if needle in line and tag not in res.noise:
                    res.noise.append(tag)
                    break
    res.lines = [("[%d] " % r if r is not None else "") + l for r, l in lines]
    res.text = text
    res.errors = errors
    markers = [mk for mk in CRASH_MARKERS if mk in text]

    why = []
    if hang:
        why.append("hang (killed after %.0f s)" % TIME_LIMIT_S)
    if not hang and res.rc is not None and (res.rc < 0 or res.rc >= 128):
        why.append("died by a signal (status %d)" % res.rc)
    if leftovers:
        why.append("processes of the job were still running 5 s after the launcher exited")
    if markers:
        why.append("crash/backtrace marker(s): " + ", ".join(markers))
    if res.rss_kib > RSS_LIMIT_KIB:
        why.append("peak RSS %.0f MiB > 1 GiB" % (res.rss_kib / 1024))
    if not hang:
        if case.kind == "error":
            if res.rc != 2:
                why.append("exit %d, expected 2" % res.rc)
            if len(errors) != 1:
                why.append("%d 'abmlora: error:' lines, expected 1" % len(errors))
            if ctx.ranks > 1 and errors and any(r != 0 for r, _ in errors):
                why.append("error line printed by rank(s) %s, expected rank 0 only"
                           % sorted({r for r, _ in errors if r != 0}, key=str))
            if errors and SOURCE_LOCATION.search(errors[0][1]):
                why.append("error line carries an internal source location (%s)"
                           % SOURCE_LOCATION.search(errors[0][1]).group(0))
            if errors:
                want = [ctx.subst(s, w) for s in case.expect]
                lacking = [s for s in want if s not in errors[0][1]]
                if lacking:
                    why.append("error line lacks %s" % ", ".join(repr(s) for s in lacking))
        elif case.kind == "nocrash":
            if res.rc not in (0, 2):
                why.append("exit %d, expected 0 or 2" % res.rc)
            if res.rc == 2 and len(errors) != 1:
                why.append("%d 'abmlora: error:' lines with exit 2, expected 1" % len(errors))
            if res.rc == 0 and errors:
                why.append("exit 0 but printed an error line")
        else:  # ok
            if res.rc != 0:
                why.append("exit %d, expected 0 (positive control)" % res.rc)
            if errors:
                why.append("printed an error line")
    if case.post and not hang:
        try:
            msg = case.post(ctx, w)
        except Exception as e:  # noqa: BLE001
            msg = "post-check failed: %s: %s" % (type(e).__name__, e)
        if msg:
            why.append(msg)
    res.ok = not why
    res.reason = "; ".join(why) if why else (
        ("exit %d" % res.rc) + (": " + errors[0][1][len("abmlora: error: "):][:160] if errors else ""))
    if not keep:
        shutil.rmtree(w, ignore_errors=True)
    return res


def launcher_failure(ctx, res):
    """mpirun itself failed, not abmlora: it crashed (e.g. SIGSEGV in PMIx_Finalize, with
    mpirun's own frames in the backtrace) or returned 1 without a word, while rank 0 had
    printed its one error line. Seen a few times in hundreds of jobs on a loaded 2-core
    machine, never twice in a row; such a case is run once more (and says so)."""
    if ctx.ranks == 1 or res.ok or res.rc is None:
        return False
    crashed = res.rc < 0 and "mpirun(" in res.text
    silent = res.rc == 1 and not res.noise and len(res.errors) == 1 and res.errors[0][0] == 0
    # Open MPI 4.1's help-message aggregation racing the abort of the other ranks: mpirun
    # prints "ORTE_ERROR_LOG: Data unpack would read past end of buffer (or Out of resource)
    # in file .../show_help.c" after rank 0's one correct line; intermittent, about once in
    # a few hundred aborted jobs here.
    show_help = ("ORTE_ERROR_LOG" in res.text and "show_help.c" in res.text
                 and len(res.errors) == 1 and res.errors[0][0] == 0)
    return crashed or silent or show_help


def _session_members(sid):
    """(pid, ppid, state) of every process in session `sid` (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        # state ppid pgrp session ...
        if len(fields) > 3 and int(fields[3]) == sid:
            out.append((int(d), int(fields[1]), fields[0]))
    return out


def _session_children(sid, me):
    return [pid for pid, ppid, _ in _session_members(sid) if ppid == me]


def _kill_session(sid):
    """SIGKILL to everything in the case's own session: only processes this case started."""
    for pid, _, _ in _session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def become_subreaper():
    """Ranks that mpirun leaves behind (e.g. after MPI_Abort) are re-parented to this process,
    so that they are reaped here and their peak RSS is counted (Linux prctl)."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:  # noqa: BLE001
        return False


def shell_quote(args):
    import shlex
    return " ".join(shlex.quote(a) for a in args)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--abmlora", required=True, help="path of the abmlora binary")
    ap.add_argument("--ranks", type=int, choices=[1, 2], default=1)
    ap.add_argument("--source-dir", default=os.path.dirname(os.path.dirname(HERE)),
                    help="checkout root (for models/default)")
    ap.add_argument("--work", required=True, help="scratch directory (created, and removed at the end)")
    ap.add_argument("--filter", default=None, help="only cases whose name matches this regex")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory and outputs")
    ap.add_argument("--jobs", type=int, default=4, help="cases run at once (default 4)")
    ap.add_argument("--verbose", action="store_true", help="print every case's output")
    args = ap.parse_args()

    define_cases()
    cases = CASES
    if args.filter:
        rx = re.compile(args.filter)
        cases = [c for c in cases if rx.search(c.name)]
    if args.list:
        for c in cases:
            print("%-8s %s  abmlora %s" % (c.kind, c.name, " ".join(c.args)))
        kinds = {k: sum(c.kind == k for c in cases) for k in ("error", "nocrash", "ok")}
        print("%d cases: %d error, %d nocrash, %d ok" % (len(cases), kinds["error"], kinds["nocrash"], kinds["ok"]))
        return 0

    ctx = Ctx(args)
    if not os.access(ctx.bin, os.X_OK):
        print("hostile corpus: %s is not an executable" % ctx.bin)
        return 1
    shutil.rmtree(ctx.work, ignore_errors=True)
    os.makedirs(os.path.join(ctx.work, "cases"))
    lock = threading.Lock()

    def log(s):
        with lock:
            print(s, flush=True)

    ctx.case_digest = {}
    if not become_subreaper():
        log("note: not a child subreaper; the RSS of ranks mpirun does not reap is not counted")
    t_all = time.time()
    make_fixtures(ctx, log)

    results = []

    retries = []

    def one(c):
        r = run_case(ctx, c, args.keep)
        if launcher_failure(ctx, r):
            first = "exit %s: %s" % (r.rc, r.reason)
            r = run_case(ctx, c, args.keep)
            r.reason += " (run twice: the launcher failed the first time, %s)" % first[:160]
            with lock:
                retries.append(c.name)
        with lock:
            results.append(r)
            tag = "PASS" if r.ok else "FAIL"
            noise = (" [mpi-noise: %s]" % ",".join(r.noise)) if r.noise else ""
            print("%s %-48s %6.2fs %5.0fMiB  %s%s" % (tag, c.name, r.seconds, r.rss_kib / 1024,
                                                       r.reason, noise), flush=True)
            if not r.ok or args.verbose:
                print("    $ " + shell_quote(r.cmd))
                for line in r.lines[-14:]:
                    print("    | " + line[:400])
        return r

    if args.jobs > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(args.jobs) as ex:
            list(ex.map(one, cases))
    else:
        for c in cases:
            one(c)

    # The fixture model must be what it was (a case that overwrote it would mask others).
    if hashlib.sha256(slurp(os.path.join(ctx.model, "model.safetensors"))).hexdigest() != ctx.model_sha:
        print("WARNING: the fixture model's model.safetensors changed during the run")

    passed = sum(r.ok for r in results)
    failed = len(results) - passed
    if not args.keep:
        shutil.rmtree(ctx.work, ignore_errors=True)
    print("hostile corpus: %.0f s in all (fixtures included)" % (time.time() - t_all))
    if retries:
        print("hostile corpus: %d case(s) run twice after an mpirun failure: %s"
              % (len(retries), " ".join(retries)))
    print("hostile corpus: %d cases, %d passed, %d failed (ranks %d)"
          % (len(results), passed, failed, args.ranks))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
