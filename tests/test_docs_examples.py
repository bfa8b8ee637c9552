"""The README's and docs/'s examples run (issue 33): every ```sh/```bash/```python block in README.md and
docs/*.md either runs here or says why not in an HTML comment on the line before it:

    <!-- not run: reason -->       the block is not run (the reason is required; tests it names must exist)
    <!-- saved as: NAME -->        the block is a file (a policy file), written as NAME into the run's folder

Every other block is run, line by line (`\\` continues a line), each line a `main.py` command run in this
process (`main.main`), in a temporary folder, on the demo model: so relative output paths (`--out x.jsonl`)
land there. The commands' placeholders get values: `F` (a file of that name there: held-out text), `N` = 8,
`H` = 0; `[…]` (optional) is left out. Each command must exit 0, and print JSON where it says `--json`.
Also: every relative link of README.md and docs/*.md names a file that exists (and a heading, after `#`)."""
import json
import re
import shlex

import pytest

from helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGS = {"sh", "bash", "shell", "console", "python", "py"}
PLACEHOLDERS = {"N": "8", "H": "0"}
MARK = re.compile(r"^<!--\s*(not run|saved as):\s*(.*?)\s*-->\s*$")


def blocks(path):
    """(line number, language, marker kind, marker text, code) of each fenced block in a language of LANGS."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        if fence.group(1) in LANGS:
            mark = MARK.match(lines[i - 1]) if i else None
            out.append((i + 1, fence.group(1), mark.group(1) if mark else "run", mark.group(2) if mark else "",
                        "\n".join(lines[i + 1:end])))
        i = end + 1
    return out


ALL = [(path, *b) for path in DOCS for b in blocks(path)]


def commands(code):
    """The block's commands, each as main.py's argv."""
    joined = re.sub(r"\\\n", " ", code)
    for line in joined.split("\n"):
        if not line.strip():
            continue
        line = re.sub(r"\s\[[^\]]*\]", "", line)  # optional parts
        argv = shlex.split(line, comments=True)
        assert argv[:2] in (["python", "main.py"], [".venv/bin/python", "main.py"]), \
            f"not a main.py command (mark the block <!-- not run: reason -->): {line}"
        yield [PLACEHOLDERS.get(a, a) for a in argv[2:]]


def test_every_block_runs_or_says_why_not():
    assert ALL, "no examples found"
    for path, line, lang, kind, text, code in ALL:
        where = f"{path.relative_to(ROOT)}:{line}"
        assert kind != "not run" or len(text) > 10, f"{where}: say why it is not run"
        assert kind != "saved as" or re.fullmatch(r"[\w.-]+", text), f"{where}: a plain file name"
        if kind == "run":
            assert lang in {"sh", "bash", "shell", "console"}, f"{where}: a {lang} block runs only when saved as a file"
            assert list(commands(code)), where
    runnable = [b for b in ALL if b[3] == "run"]
    assert len(runnable) >= 2 and any(b[3] == "saved as" for b in ALL)


def test_blocks_not_run_point_at_tests_that_exist():
    """A block not run here says why, and the tests it names as covering it are real files."""
    not_run = [b for b in ALL if b[3] == "not run"]
    assert not_run
    for path, line, lang, kind, text, code in not_run:
        for named in re.findall(r"tests/[\w/]+\.py", text):
            assert (ROOT / named).is_file(), f"{path.relative_to(ROOT)}:{line} names {named}, which does not exist"


def test_the_policy_file_block_is_the_shipped_example():
    [(path, *_, code)] = [b for b in ALL if b[3] == "saved as" and b[4] == "my_policy.py"]
    assert code.strip() == (ROOT / "examples" / "policies" / "h2o_decay.py").read_text(encoding="utf-8").strip()


def test_the_examples_run(tmp_path, monkeypatch, capsys):
    import main
    from backend.evaluate.deciders import registered_policies, unregister_policy

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SINKVIS_POLICY_DIR", str(tmp_path / "policies"))
    (tmp_path / "F").write_text((ROOT / "assets" / "eval" / "jargon-heldout.txt").read_text(encoding="utf-8")[:600],
                                encoding="utf-8")
    for path, line, lang, kind, text, code in ALL:
        if kind == "saved as":
            (tmp_path / text).write_text(code + "\n", encoding="utf-8")
    before = set(registered_policies())
    ran = []
    try:
        for path, line, lang, kind, text, code in ALL:
            if kind != "run":
                continue
            for argv in commands(code):
                where = f"{path.relative_to(ROOT)}:{line}: main.py {shlex.join(argv)}"
                capsys.readouterr()
                assert main.main(argv) == 0, where
                out = capsys.readouterr().out
                if "--json" in argv or "--self-test" in argv:
                    docs = [json.loads(x) for x in out.splitlines() if x.strip()] if argv[0] == "stream" \
                        else [json.loads(out)]
                    assert docs and all(isinstance(d, dict) for d in docs), where
                    if "--self-test" in argv:
                        assert docs[0]["ok"] is True, where
                else:
                    assert out.strip(), where
                ran.append(argv[0])
    finally:
        for name in set(registered_policies()) - before:  # the CLI's Api offered the file's policy process-wide
            unregister_policy(name)
    assert {"--self-test", "attention", "stream", "simulate", "profile"} <= set(ran)
    assert not list(ROOT.glob("*.jsonl"))  # nothing written into the repository


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped (not - or _), spaces → -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    text = re.sub(r"`[^`\n]*`", "", path.read_text(encoding="utf-8"))  # code spans hold no links
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.exists(), f"{path.relative_to(ROOT)}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            heads = {_slug(re.sub(r"^#+\s*", "", h)) for h in dest.read_text(encoding="utf-8").split("\n")
                     if re.match(r"^#+\s", h)}
            assert anchor in heads, f"{path.relative_to(ROOT)}: no heading #{anchor} in {dest.name}"
