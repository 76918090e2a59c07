#!/usr/bin/env python3
"""Real PEFT (0.7.1, from the oracle venv) as the judge of our adapter directories.

Usage (with the venv's python, launch/oracle_venv.sh):
  peft_check.py save MODEL_DIR OUT_DIR --r 8 --alpha 16 --dropout 0.0 --targets q_proj,v_proj
                [--init kaiming|gaussian] [--rslora] [--random-b SEED]
      get_peft_model(LlamaForCausalLM.from_pretrained(MODEL_DIR), LoraConfig(...)) and
      save_pretrained(OUT_DIR). --targets all-linear = the seven projections (PEFT 0.7.1
      has no "all-linear"). --rslora: PEFT 0.7.1 has no use_rslora, so lora_alpha is given
      as alpha*sqrt(r) (same scale). --random-b: lora_B ~ N(0, 0.05) (torch seed SEED)
      before saving, so the adapter changes the logits.
  peft_check.py compare OURS_DIR THEIRS_DIR
      adapter_model.safetensors: same keys, shapes, dtypes and metadata; adapter_config.json:
      same fields in the same order with the same values (target_modules compared as a
      set: PEFT writes a Python set), and byte-identical once PEFT's target_modules are
      sorted. Prints what differs and exits 1.
  peft_check.py logits MODEL_DIR ADAPTER_DIR --ids "1,5;3,4" --out OUT.safetensors
      PeftModel.from_pretrained(base, ADAPTER_DIR) in eval mode; writes "logits" F32 [B,T,V].
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def base_model(model_dir):
    import transformers
    return transformers.LlamaForCausalLM.from_pretrained(
        model_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()


def cmd_save(a):
    import peft
    # save_pretrained also writes a model card through huggingface_hub, which needs Jinja2
    # (not in the venv); the card is not part of the adapter.
    peft.PeftModel.create_or_update_model_card = lambda self, out_dir: None
    targets = SEVEN if a.targets == "all-linear" else a.targets.split(",")
    alpha = a.alpha * math.sqrt(a.r) if a.rslora else a.alpha
    if float(alpha).is_integer():
        alpha = int(alpha)  # as a user would pass it; PEFT's field is an int
    cfg = peft.LoraConfig(r=a.r, lora_alpha=alpha, lora_dropout=a.dropout, target_modules=targets,
                          init_lora_weights=True if a.init == "kaiming" else "gaussian",
                          task_type="CAUSAL_LM")
    torch.manual_seed(0)  # PEFT draws lora_A from the global generator
    model = peft.get_peft_model(base_model(a.model_dir), cfg)
    if a.random_b is not None:
        g = torch.Generator().manual_seed(a.random_b)
        with torch.no_grad():
            for name, p in sorted(model.named_parameters()):
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    model.save_pretrained(a.out_dir)


def cmd_compare(a):
    bad = []
    ours, ours_meta = safetensors_py.load_with_metadata(os.path.join(a.ours, "adapter_model.safetensors"))
    theirs, theirs_meta = safetensors_py.load_with_metadata(os.path.join(a.theirs, "adapter_model.safetensors"))
    if sorted(ours) != sorted(theirs):
        bad.append(f"tensor keys differ: only ours {sorted(set(ours) - set(theirs))}, "
                   f"only theirs {sorted(set(theirs) - set(ours))}")
    for k in sorted(set(ours) & set(theirs)):
        if ours[k].shape != theirs[k].shape or ours[k].dtype != theirs[k].dtype:
            bad.append(f"{k}: ours {ours[k].dtype} {list(ours[k].shape)}, "
                       f"theirs {theirs[k].dtype} {list(theirs[k].shape)}")
    if ours_meta != theirs_meta:
        bad.append(f"metadata: ours {ours_meta}, theirs {theirs_meta}")

    with open(os.path.join(a.ours, "adapter_config.json"), "rb") as f:
        ours_text = f.read()
    with open(os.path.join(a.theirs, "adapter_config.json"), "rb") as f:
        theirs_text = f.read()
    oc, tc = json.loads(ours_text), json.loads(theirs_text)
    if list(oc) != list(tc):
        bad.append(f"config fields differ:\n  ours   {list(oc)}\n  theirs {list(tc)}")
    for k in tc:
        o, t = oc.get(k), tc[k]
        if k == "target_modules" and isinstance(o, list) and isinstance(t, list):
            o, t = sorted(o), sorted(t)
        if o != t or type(o) != type(t):
            bad.append(f"config {k}: ours {o!r}, theirs {t!r}")
    tc["target_modules"] = sorted(tc["target_modules"], key=SEVEN.index)
    canonical = json.dumps(tc, indent=2, sort_keys=True).encode()
    if ours_text != canonical:
        bad.append(f"adapter_config.json bytes differ from PEFT's (target_modules sorted):\n"
                   f"--- ours\n{ours_text.decode()}\n--- theirs\n{canonical.decode()}")
    for b in bad:
        print("MISMATCH", b)
    print(f"peft_check compare: {len(ours)} tensors, {len(oc)} config fields, "
          f"{'OK' if not bad else str(len(bad)) + ' mismatches'}")
    sys.exit(1 if bad else 0)


def cmd_logits(a):
    import peft
    from llama_ref import parse_ids
    model = peft.PeftModel.from_pretrained(base_model(a.model_dir), a.adapter_dir).eval()
    with torch.no_grad():
        logits = model(input_ids=parse_ids(a.ids)).logits.float()
    safetensors_py.save(a.out, {"logits": logits.contiguous()})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save")
    s.add_argument("model_dir")
    s.add_argument("out_dir")
    s.add_argument("--r", type=int, default=8)
    s.add_argument("--alpha", type=float, default=16)
    s.add_argument("--dropout", type=float, default=0.0)
    s.add_argument("--targets", default="q_proj,v_proj")
    s.add_argument("--init", choices=["kaiming", "gaussian"], default="kaiming")
    s.add_argument("--rslora", action="store_true")
    s.add_argument("--random-b", type=int, default=None)
    c = sub.add_parser("compare")
    c.add_argument("ours")
    c.add_argument("theirs")
    lg = sub.add_parser("logits")
    lg.add_argument("model_dir")
    lg.add_argument("adapter_dir")
    lg.add_argument("--ids", required=True)
    lg.add_argument("--out", required=True)
    a = ap.parse_args()
    {"save": cmd_save, "compare": cmd_compare, "logits": cmd_logits}[a.cmd](a)


if __name__ == "__main__":
    main()
