#!/usr/bin/env python3
"""Checks docs/operations.md's configuration table against the binaries' real --help.

Runs `voucher-etl --help`, the --help of each of its subcommands, `voucher-api --help` and
`voucher-events --help`, then fails when
- a flag or its environment variable is missing from the table, or its default differs;
- the table documents a flag, variable or subcommand that does not exist;
- a deployment file (Dockerfiles, docker-compose.yml, k8s/, kind/) sets a VOUCHER_* variable
  that no binary reads.

The table's rows: | command | flag | environment | default | what it does |, where command is
`voucher-etl run`, `voucher-etl run, schedule`, `voucher-api` or `voucher-events`, flag is `--name` (aliases may
follow: `--output`, alias `--tables-dir`), environment is `NAME` or `-`, default is `value` in
backticks, or text without backticks when the flag has none (e.g. "(required)").

Binaries: $VOUCHER_ETL_BIN, $VOUCHER_API_BIN and $VOUCHER_EVENTS_BIN, or built with
`cargo build --bin` (debug).
Usage: check_config_docs.py [--root DIR] [--doc FILE] [--print]   (--print: the table from --help)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

BEGIN = "<!-- config-table:begin -->"
END = "<!-- config-table:end -->"
SKIP_FLAGS = {"--help", "--version"}


@dataclass
class Flag:
    name: str
    env: str | None
    default: str | None
    help: str
    required: bool = False
    switch: bool = False
    aliases: list[str] = field(default_factory=list)

    def default_cell(self) -> str:
        if self.default is not None:
            return f"`{self.default}`"
        return "(required)" if self.required else "off" if self.switch else "(unset)"


def run_help(binary: str, *args: str) -> str:
    out = subprocess.run([binary, *args, "--help"], capture_output=True, text=True, check=True)
    return out.stdout


def subcommands(help_text: str) -> list[str]:
    m = re.search(r"^Commands:\n((?:  .*\n?)+)", help_text, re.M)
    if not m:
        return []
    names = [line.split()[0] for line in m.group(1).splitlines() if line.strip()]
    return [n for n in names if n != "help"]


def parse_flags(help_text: str) -> list[Flag]:
    usage = re.search(r"^Usage: (.*)$", help_text, re.M)
    required = set(re.findall(r"(?<![\[\w])(--[\w-]+) <", usage.group(1) if usage else ""))
    m = re.search(r"^Options:\n(.*?)(?:\n\S|\Z)", help_text, re.M | re.S)
    if not m:
        return []
    entries: list[list[str]] = []
    for line in m.group(1).splitlines():
        if re.match(r"^\s{2,}(-\w, )?--[\w-]+", line):
            entries.append([line])
        elif entries:
            entries[-1].append(line)
    flags = []
    for lines in entries:
        text = " ".join(l.strip() for l in lines)
        head = re.match(r"(?:-\w, )?(--[\w-]+)( <\w+>)?", text)
        name = head.group(1)
        if name in SKIP_FLAGS:
            continue
        env = re.search(r"\[env: (\w+)(?:=[^\]]*)?\]", text)
        default = re.search(r"\[default: ([^\]]*)\]", text)
        aliases = re.search(r"\[alias(?:es)?: ([^\]]*)\]", text)
        description = re.sub(r"(?:--[\w-]+(?: <\w+>)?|-\w,)\s*", "", text, count=1)
        description = re.sub(r"\s*\[(env|default|alias|aliases): [^\]]*\]", "", description).strip()
        flags.append(
            Flag(
                name=name,
                env=env.group(1) if env else None,
                default=default.group(1) if default else None,
                help=description,
                required=name in required,
                switch=head.group(2) is None,
                aliases=[a.strip() for a in aliases.group(1).split(",")] if aliases else [],
            )
        )
    return flags


def binary_path(root: Path, name: str, variable: str) -> str:
    if os.environ.get(variable):
        return os.environ[variable]
    target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    subprocess.run(
        ["cargo", "build", "--quiet", "-p", name, "--bin", name],
        cwd=root,
        check=True,
    )
    return str(target / "debug" / name)


def real_config(root: Path) -> dict[str, list[Flag]]:
    """Command ("voucher-etl run", "voucher-api") -> its flags, from --help."""
    commands: dict[str, list[Flag]] = {}
    for name, variable in (("voucher-etl", "VOUCHER_ETL_BIN"), ("voucher-api", "VOUCHER_API_BIN"),
                           ("voucher-events", "VOUCHER_EVENTS_BIN")):
        binary = binary_path(root, name, variable)
        top = run_help(binary)
        subs = subcommands(top)
        # A program may have flags of its own beside subcommands (voucher-api serves with
        # flags, `voucher-api routes` prints its route table).
        if not subs or any(f.name not in SKIP_FLAGS for f in parse_flags(top)):
            commands[name] = parse_flags(top)
        for sub in subs:
            commands[f"{name} {sub}"] = parse_flags(run_help(binary, sub))
    return commands


def print_table(commands: dict[str, list[Flag]]) -> None:
    print("| command | flag | environment | default | what it does |")
    print("|---|---|---|---|---|")
    for command, flags in commands.items():
        for f in flags:
            flag = f"`{f.name}`" + "".join(f", alias `{a}`" for a in f.aliases)
            env = f"`{f.env}`" if f.env else "-"
            print(f"| {command} | {flag} | {env} | {f.default_cell()} | {f.help} |")


def doc_rows(doc: Path) -> list[tuple[int, list[str]]]:
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc}: no table between {BEGIN} and {END}")
    start = text.index(BEGIN)
    block = text[start : text.index(END)]
    first_line = text[:start].count("\n") + 1
    rows = []
    for i, line in enumerate(block.splitlines()):
        if not line.startswith("|") or re.match(r"^\|[-| :]+\|$", line) or "| command |" in line:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((first_line + i, cells))
    return rows


def expand_command(cell: str) -> list[str]:
    """`voucher-etl run, schedule` -> ["voucher-etl run", "voucher-etl schedule"]."""
    cell = cell.replace("`", "")
    binary, _, rest = cell.partition(" ")
    subs = [s.strip() for s in rest.split(",") if s.strip()]
    return [f"{binary} {s}" for s in subs] if subs else [binary]


def check(root: Path, doc: Path, commands: dict[str, list[Flag]]) -> list[str]:
    problems = []
    documented: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for line, cells in doc_rows(doc):
        where = f"{doc.relative_to(root) if doc.is_relative_to(root) else doc}:{line}"
        if len(cells) < 4:
            problems.append(f"{where}: a row needs command | flag | environment | default | ...")
            continue
        flag_names = re.findall(r"`(--[\w-]+)`", cells[1])
        if not flag_names:
            problems.append(f"{where}: no `--flag` in the flag column: {cells[1]!r}")
            continue
        for command in expand_command(cells[0]):
            if command not in commands:
                problems.append(f"{where}: documents `{command}`, which does not exist (commands: {', '.join(commands)})")
                continue
            documented[(command, flag_names[0])] = (line, cells)
            real = {f.name: f for f in commands[command]}
            flag = real.get(flag_names[0])
            if not flag:
                problems.append(f"{where}: documents `{command} {flag_names[0]}`, which does not exist")
                continue
            for alias in flag_names[1:]:
                if alias not in flag.aliases:
                    problems.append(f"{where}: `{alias}` is no alias of `{command} {flag.name}`")
            env_cell = re.findall(r"`([A-Z0-9_]+)`", cells[2])
            if flag.env and flag.env not in env_cell:
                problems.append(f"{where}: `{command} {flag.name}` reads {flag.env}, the table says {cells[2]!r}")
            if not flag.env and env_cell:
                problems.append(f"{where}: `{command} {flag.name}` reads no environment variable, the table says {cells[2]!r}")
            if flag.default is not None and f"`{flag.default}`" not in cells[3] and flag.default not in cells[3]:
                problems.append(f"{where}: `{command} {flag.name}` defaults to {flag.default!r}, the table says {cells[3]!r}")
            if flag.default is None and cells[3] != flag.default_cell():
                problems.append(f"{where}: `{command} {flag.name}` is {flag.default_cell()}, the table says {cells[3]!r}")
    for command, flags in commands.items():
        for f in flags:
            if (command, f.name) not in documented:
                problems.append(
                    f"{doc.name}: `{command} {f.name}` ({f.env or 'no env'}) is missing from the configuration table"
                )
    # Deployment files may only set variables the binaries read.
    known = {f.env for flags in commands.values() for f in flags if f.env}
    files = [root / f"Dockerfile.{image}" for image in ("api", "etl", "events")]
    files.append(root / "docker-compose.yml")
    files += sorted((root / "k8s").rglob("*.yaml")) + sorted((root / "kind").glob("*"))
    for path in files:
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for var in re.findall(r"\b(VOUCHER_[A-Z0-9_]+)\b", line):
                if var not in known:
                    problems.append(f"{path.relative_to(root)}:{n}: sets {var}, which no binary reads")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--doc", type=Path, help="default: ROOT/docs/operations.md")
    parser.add_argument("--print", action="store_true", help="print the table from --help and exit")
    args = parser.parse_args()
    root = args.root.resolve()
    real_root = Path(__file__).resolve().parent.parent
    commands = real_config(real_root)
    if args.print:
        print_table(commands)
        return 0
    problems = check(root, (args.doc or root / "docs/operations.md").resolve(), commands)
    for p in problems:
        print(p)
    flags = sum(len(f) for f in commands.values())
    if not problems:
        print(f"{len(commands)} commands, {flags} flags: all documented, none extra")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
