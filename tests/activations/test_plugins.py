"""Your own activation in every program without a launcher: parameter types, --import, entry points,
--list-activations, and the example in examples/my_activation.py end to end."""

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO, write_recipe
from helpers.programs import FAST as FINETUNE_FAST
from helpers.programs import SAMPLE, finetune, pretrain
from torch import nn

import bert_helu.activations.registry as activations
from bert_helu import UserError, build_activation, list_activations, load_model, register_activation
from bert_helu.activations import parse_spec
from bert_helu.activations.plugins import import_module
from bert_helu.activations.registry import parameters


@register_activation("test_typed")
class Typed(nn.Module):
    def __init__(
        self, scale: float = 1.0, steps: int = 2, flip: bool = False, mode: str = "plain", free=None
    ):
        super().__init__()
        self.values = dict(scale=scale, steps=steps, flip=flip, mode=mode, free=free)

    def forward(self, x):
        return x


def test_parameters_may_be_numbers_integers_booleans_or_strings():
    act = build_activation("test_typed:scale=2,steps=3,flip=true,mode=fancy,free=false")
    assert act.values == dict(scale=2.0, steps=3, flip=True, mode="fancy", free=False)
    assert type(act.values["scale"]) is float and type(act.values["steps"]) is int
    # an unannotated parameter without default takes a number, a boolean, or else a string
    assert build_activation("test_typed:free=0.5").values["free"] == 0.5
    assert build_activation("test_typed:free=abc").values["free"] == "abc"
    assert [(p.name, p.kind) for p in parameters(Typed)] == [
        ("scale", "float"), ("steps", "int"), ("flip", "bool"), ("mode", "str"), ("free", "any"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "spec, message",
    [
        ("test_typed:flip=yes", "parameter 'flip' must be true or false, got 'yes'"),
        ("test_typed:steps=2.5", "parameter 'steps' must be an integer, got '2.5'"),
        ("test_typed:scale=big", "parameter 'scale' must be a number, got 'big'"),
        ("test_typed:mode=", "parameter 'mode' must not be empty"),
        ("nosuch_act", "pass --import MODULE or install a package with a bert_helu.activations entry point"),
    ],
)
def test_bad_values_name_the_parameter(spec, message):
    with pytest.raises(UserError) as err:
        parse_spec(spec)
    assert message in str(err.value)


def test_specs_round_trip_exactly():
    for spec in ["test_typed:flip=true,mode=fancy,scale=2,steps=3", "helu:alpha=0.123456789", "relu"]:
        assert str(parse_spec(spec)) == spec and parse_spec(str(parse_spec(spec))) == parse_spec(spec)
    assert str(parse_spec("helu:alpha=0.050")) == "helu:alpha=0.05"  # short form, as checkpoints say


def test_installed_package_entry_points_register_activations(tmp_path, monkeypatch):
    """A package declaring [project.entry-points."bert_helu.activations"] needs no --import."""
    (tmp_path / "ep_plugin_mod.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            from bert_helu import register_activation

            class Cubed(nn.Module):  # registered under the entry point's name
                def forward(self, x):
                    return x ** 3

            @register_activation("ep_by_module")  # registered on import of the module
            class Halved(nn.Module):
                def forward(self, x):
                    return x / 2
            """
        )
    )
    dist = tmp_path / "ep_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[bert_helu.activations]\nep_cubed = ep_plugin_mod:Cubed\nep_module = ep_plugin_mod\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(activations, "_entry_points_loaded", False)
    x = torch.tensor([2.0])
    assert build_activation("ep_cubed")(x).item() == 8.0
    assert build_activation("ep_by_module")(x).item() == 1.0
    assert {"ep_cubed", "ep_by_module"} <= set(list_activations())


def test_a_broken_entry_point_is_one_line_naming_it(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bert_helu.activations]\nbroken = no_such_module_xyz:Act\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(activations, "_entry_points_loaded", False)
    with pytest.raises(
        UserError, match=r"activation plugin broken = no_such_module_xyz:Act .* failed to load"
    ):
        parse_spec("not_registered_anywhere")


def test_import_takes_a_module_name_or_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg_acts").mkdir()
    (tmp_path / "pkg_acts" / "mine.py").write_text(
        "from torch import nn\nfrom bert_helu import register_activation\n"
        "register_activation('test_from_module')(type('M', (nn.Module,), {'forward': lambda s, x: x}))\n"
    )
    (tmp_path / "loose.py").write_text(
        "from torch import nn\nfrom bert_helu import register_activation\n"
        "register_activation('test_from_file')(type('F', (nn.Module,), {'forward': lambda s, x: x}))\n"
    )
    import_module("pkg_acts.mine")
    import_module(str(tmp_path / "loose.py"))
    assert {"test_from_module", "test_from_file"} <= set(list_activations())
    with pytest.raises(UserError, match=r"--import pkg_acts.nope: no module named 'pkg_acts.nope'"):
        import_module("pkg_acts.nope")
    with pytest.raises(UserError, match=r"--import missing.py: no such file"):
        import_module("missing.py")


# A module that fails while it is imported, three ways: (file contents, line that fails, what failed)
BROKEN_MODULES = {
    "syntax": ("from torch import nn\n\ndef act(x:\n    return x\n", 3, "SyntaxError: "),
    "missing": (
        '"""needs a package that is not installed"""\nimport os\nimport not_installed_dependency_xyz\n',
        3,
        "ModuleNotFoundError: No module named 'not_installed_dependency_xyz'",
    ),
    "raises": (
        "import math\n\nSCALE = math.sqrt(2)\nraise RuntimeError(f'bad scale {SCALE:.1f}')\n",
        4,
        "RuntimeError: bad scale 1.4",
    ),
}

PROGRAMS = {  # every program that takes --import, with the arguments it needs besides
    "pretrain": ("pretrain.__main__", ["--list-activations"]),
    "finetune": ("finetune.__main__", ["--list-activations"]),
    "glue_eval stats": ("glue_eval.__main__", ["stats", "--checkpoint", "x", "--data", "sst2"]),
    "glue_eval bench-inference": ("glue_eval.__main__", ["bench-inference"]),
}


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("broken", BROKEN_MODULES)
@pytest.mark.parametrize("as_file", [True, False], ids=["file", "module"])
def test_a_module_that_fails_to_import_is_one_line_naming_file_and_line(
    program, broken, as_file, tmp_path, monkeypatch, capsys
):
    import importlib

    monkeypatch.chdir(tmp_path)
    name = f"broken_{broken}_{as_file}"
    source, line, what = BROKEN_MODULES[broken]
    (tmp_path / f"{name}.py").write_text(source)
    module, args = PROGRAMS[program]
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_:
        main([*args[:1], "--import", f"{name}.py" if as_file else name, *args[1:]])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    shown = f"{name}.py" if as_file else name
    assert err.startswith(f"error: --import {shown}: importing it failed at ")
    assert f"{tmp_path / name}.py, line {line}: {what}" in err
    assert name not in sys.modules  # a half-run module is not left behind to be found later


def test_list_activations_lists_every_registered_one(capsys, monkeypatch):
    from pretrain.__main__ import main

    monkeypatch.chdir(REPO)
    assert main(["--import", "examples.my_activation", "--list-activations"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0] for line in lines[1:] if line.strip() and not line.startswith("A checkpoint")}
    assert listed == set(list_activations())
    row = {line.split()[0]: line for line in lines[1:] if line.strip()}
    assert row["helu"].split()[1:3] == ["alpha=0.05", "relu"]  # saved as relu: HeLU's forward is ReLU
    assert "scale=1, hard=false, gate=none" in row["scaled_tanh"]
    assert "bert_helu:scaled_tanh" in row["scaled_tanh"] and "examples.my_activation" in row["scaled_tanh"]


# --------------------------------------------------------------------- the example, end to end


def test_example_activation_computes_what_it_says(monkeypatch):
    monkeypatch.chdir(REPO)
    import_module("examples.my_activation")
    x = torch.linspace(-3, 3, 13)
    assert torch.allclose(build_activation("scaled_tanh:scale=2")(x), 2 * torch.tanh(x))
    assert torch.allclose(
        build_activation("scaled_tanh:scale=0.5,hard=true,gate=sigmoid")(x),
        0.5 * torch.clamp(x, -1, 1) * torch.sigmoid(x),
    )
    with pytest.raises(UserError, match="gate must be one of none, sigmoid, got 'tanh'"):
        build_activation("scaled_tanh:gate=tanh")


def test_example_activation_through_pretrain_and_finetune(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    recipe = write_recipe(tmp_path / "recipe.yaml", tmp_path / "cache")
    out = tmp_path / "runs" / "tanh"
    code = pretrain("--import", "examples.my_activation", "--activation", "scaled_tanh:scale=2",
                    "--config", recipe, "--output-dir", out, "train.max_steps=2")  # fmt: skip
    assert code == 0
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["hidden_act"] == "bert_helu:scaled_tanh:scale=2"
    model = load_model(out / "final")
    act = model.bert.encoder.layer[0].intermediate.intermediate_act_fn
    assert type(act).__name__ == "ScaledTanh" and act.scale == 2.0
    # its card says so: stock transformers cannot load it, bert_helu can
    card = (out / "final" / "README.md").read_text()
    assert "`bert_helu:scaled_tanh:scale=2`, which stock `transformers` does not know" in card
    assert f'model = load_model("{out / "final"}", task="mlm")' in card

    results = tmp_path / "results"
    code = finetune("--import", "examples.my_activation", "--checkpoints", out / "final", "--tasks", "rte",
                    "--glue-dir", SAMPLE, "--output-dir", results, *FINETUNE_FAST)  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = json.loads((results / "tanh" / "rte" / "seed42" / "results.json").read_text())
    assert result["activation"] == "scaled_tanh:scale=2" and math.isfinite(result["metrics"]["accuracy"])

    # a fresh process that was not told to import the module says what to do, in one line
    probe = f"from bert_helu import load_model; load_model({str(out / 'final')!r})"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0
    assert "unknown activation 'scaled_tanh'" in done.stderr and "--import MODULE" in done.stderr
