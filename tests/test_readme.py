"""The README's two commands stay true: CI runs the second one verbatim, the first names real things."""
import re
import shlex
from pathlib import Path

from genzoo.cli import build_parser
from genzoo.models.registry import available_models

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    return blocks[0].strip(), blocks[1].strip()


def test_readme_opens_with_two_one_line_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.index("```bash")
    assert text[:first_block].count("```") == 0
    main_job, tests = _commands()
    assert "\n" not in main_job and "\n" not in tests
    assert main_job.startswith("pip install torch==2.13.0 && ")
    assert tests.startswith("pip install torch==2.13.0 && ")


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert _commands()[1] in ci_lines


def test_main_job_commands_parse_and_name_real_models_and_presets():
    parser = build_parser()
    genzoo_cmds = [c.strip() for c in _commands()[0].split("&&") if c.strip().startswith("genzoo ")]
    assert [c.split()[1] for c in genzoo_cmds] == ["train", "sample", "complete"]
    for cmd in genzoo_cmds:
        args = parser.parse_args(shlex.split(cmd)[1:])
        if args.command == "train":
            assert args.preset in available_models()[args.model].presets
