#!/usr/bin/env python3
"""The docs cannot rot: every command a user would type in README.md and docs/*.md.

Reads the ```sh blocks, joins continuation lines, splits at && ; |, and for each command:
- abmlora itself (build/abmlora SUB, launch/run ... -- SUB, mpirun ... build/abmlora SUB,
  sbatch slurm/*.sbatch [train flags]): SUB must exist and every --flag must be one that
  `abmlora SUB --help` lists; the cheap ones run for real (`inspect` of a directory that
  exists, `--help`);
- scripts of this repository (bash launch/x.sh, slurm/*.sbatch, data/*.sh): the file must
  exist, and every ENV=value the line sets must be named in that script;
- anything else (wget, huggingface-cli, ...): listed as not checked.
Usage: doc_check.py --abmlora build/abmlora --source-dir .     (exit 1 on any problem)
"""
import argparse
import glob
import os
import re
import shlex
import subprocess
import sys

SPLIT = re.compile(r"\s*(?:&&|\|\||;|\|)\s*")


def commands(text):
    """(line number, command) for every command of every ```sh block."""
    for m in re.finditer(r"```sh\n(.*?)```", text, re.S):
        first = text.count("\n", 0, m.start()) + 2
        lines = m.group(1).split("\n")
        i = 0
        while i < len(lines):
            start, line = first + i, lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i]
            i += 1
            line = re.sub(r"\s#.*$", "", line).strip()  # a trailing comment
            if line and not line.startswith("#"):
                for part in SPLIT.split(line):
                    if part:
                        yield start, part


class Checker:
    def __init__(self, abmlora, root):
        self.abmlora, self.root = abmlora, root
        self.helps = {}
        self.problems, self.checked, self.skipped = [], 0, []

    def help_of(self, sub):
        if sub not in self.helps:
            r = subprocess.run([self.abmlora, sub, "--help"], capture_output=True, text=True,
                               timeout=60)
            self.helps[sub] = r.stdout + r.stderr if r.returncode == 0 else None
        return self.helps[sub]

    def check_abmlora(self, where, sub, args):
        text = self.help_of(sub)
        if text is None:
            self.problems.append(f"{where}: abmlora has no command '{sub}'")
            return
        for a in args:
            if a.startswith("--"):
                flag = a.split("=", 1)[0]
                if not re.search(r"(^|\s)" + re.escape(flag) + r"(\s|$|\[|=)", text, re.M):
                    self.problems.append(f"{where}: abmlora {sub} has no option {flag}")
        if sub == "inspect" and args and os.path.isdir(os.path.join(self.root, args[0])):
            r = subprocess.run([self.abmlora, "inspect", args[0]], cwd=self.root,
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                self.problems.append(f"{where}: `abmlora inspect {args[0]}` exited {r.returncode}")
        self.checked += 1

    def check_script(self, where, path, env):
        full = os.path.join(self.root, path)
        if not os.path.isfile(full):
            self.problems.append(f"{where}: {path} does not exist")
            return
        body = open(full, encoding="utf-8", errors="replace").read()
        for name in env:
            if name not in body and name not in ("ABMLORA", "BIN"):
                self.problems.append(f"{where}: {path} does not read {name}")
        self.checked += 1

    def check(self, where, command):
        try:
            words = shlex.split(command)
        except ValueError as e:
            self.problems.append(f"{where}: cannot parse `{command}`: {e}")
            return
        env = []
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            env.append(words.pop(0).split("=", 1)[0])
        if not words:
            return
        if words[0] in ("mpirun", "srun"):  # launcher options, then the program
            while words and not words[0].endswith("abmlora"):
                words.pop(0)
        if words and words[0] == "bash" and len(words) > 1:
            words.pop(0)
        if not words:
            return
        prog = words[0]
        if prog.endswith("abmlora"):
            if len(words) > 1:
                self.check_abmlora(where, words[1], words[2:])
        elif prog in ("launch/run",):
            rest = words[words.index("--") + 1:] if "--" in words else []
            self.check_script(where, prog, env)
            if rest:
                self.check_abmlora(where, rest[0], rest[1:])
        elif prog == "sbatch":
            script = next((w for w in words[1:] if w.endswith(".sbatch")), None)
            if script is None:
                self.skipped.append(f"{where}: {command}")
                return
            self.check_script(where, script, env)
            self.check_abmlora(where, "train", words[words.index(script) + 1:])
        elif re.match(r"^(launch|slurm|data|tests)/", prog):
            self.check_script(where, prog, env)
        else:
            self.skipped.append(f"{where}: {command}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--abmlora", required=True)
    ap.add_argument("--source-dir", required=True)
    a = ap.parse_args()
    root = os.path.abspath(a.source_dir)
    c = Checker(os.path.abspath(a.abmlora), root)
    docs = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    for path in docs:
        rel = os.path.relpath(path, root)
        for line, command in commands(open(path, encoding="utf-8").read()):
            c.check(f"{rel}:{line}", command)
    for s in c.skipped:
        print(f"not checked (not abmlora's): {s}")
    for p in c.problems:
        print(f"PROBLEM {p}")
    print(f"doc_check: {c.checked} commands checked in {len(docs)} files, "
          f"{len(c.skipped)} not ours, {len(c.problems)} problems")
    return 1 if c.problems else 0


if __name__ == "__main__":
    sys.exit(main())
