"""The pretraining loop of ``python -m pretrain``: processes, model, resume, steps, checkpoints, summary.

``pretrain/__main__.py`` reads the recipe and prepares the corpus, then calls ``train``; this file
holds everything that needs torch, so that a ``--prepare-only`` cache hit never imports it.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from bert_helu.activations import parse_spec
from bert_helu.agreement import main_first, on_main, step_values
from bert_helu.data import MLMMasker, format_summary, prepare_corpus
from bert_helu.identity import pretrain_identity
from bert_helu.modeling import (
    activation_of,
    build_mlm_model,
    load_model,
    model_config,
    save_model,
    set_activation,
)
from bert_helu.precision import resolve_mixed_precision
from bert_helu.pretraining import (
    BadStepGuard,
    BudgetClock,
    GlobalBatches,
    SparseMLM,
    count_masked,
    evaluate,
    make_optimizer,
    plan_batches,
    set_lr,
    train_step,
    validation_batches,
)
from bert_helu.run_files import RunFiles, StopSignals, tracker_names
from bert_helu.schedules import Schedule


def train(cfg, output_dir: str, schedule: Schedule) -> int:
    """Train (or resume) the run in ``output_dir``; returns the exit code (128 + signal if interrupted)."""
    # 2.-7. below continue the numbered story that pretrain/__main__.py starts.
    tr = cfg.train
    parse_spec(cfg.activation)  # a typo fails now, not after the corpus is prepared

    # 2. Processes, devices and precision (accelerate), logs, and the run directory (locked by
    #    pretrain/__main__.py: one run writes it). The recipe's global batch is kept whatever the
    #    number of processes; the micro-batch is lowered if it does not divide each one's share.
    started = time.perf_counter()
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # without it, torchrun on CPU gives N single-process runs
        mixed_precision=resolve_mixed_precision(tr.mixed_precision),
        log_with=tracker_names(cfg.logging, Path(output_dir)),
        project_dir=output_dir,
    )
    run = RunFiles(Path(output_dir), accelerator, cfg)
    plan = plan_batches(tr.global_batch_size, tr.micro_batch_size, accelerator.num_processes)
    if plan.lowered:
        run.print(
            f"batch: micro-batch lowered from {plan.recipe_micro_batch} to {plan.micro_batch} so that the "
            f"global batch {plan.global_batch} splits evenly over {plan.world_size} process(es)"
        )
    set_seed(cfg.seed)
    if tr.cpu_threads:
        torch.set_num_threads(tr.cpu_threads)  # on a shared machine fewer threads can be much faster

    # 3. Data: cleaned, tokenized, packed and cached once (main process first, the others reuse it).
    corpus = main_first(accelerator, lambda: prepare_corpus(cfg.data))
    run.print(format_summary(corpus.summary))
    masker = MLMMasker(corpus.tokenizer, tr.mlm_probability)
    pad_id = corpus.tokenizer.pad_token_id

    # 4. The model: fresh, or an existing checkpoint with its activation swapped ("relufying").
    if cfg.model.init_from:
        model = set_activation(load_model(cfg.model.init_from, task="mlm"), cfg.activation)
    else:
        tok = corpus.tokenizer
        special_ids = {"pad_token_id": tok.pad_token_id, "cls_token_id": tok.cls_token_id}
        special_ids["sep_token_id"] = tok.sep_token_id
        model = build_mlm_model(model_config(cfg.model, cfg.activation, len(tok), special_ids))
    activation = activation_of(model)
    identity = pretrain_identity(cfg, activation, accelerator.mixed_precision, corpus.fingerprint)
    if run.finished(identity):
        return 0
    run.check_space(model)
    optimizer = make_optimizer(model, tr)
    train_model = torch.compile(SparseMLM(model)) if tr.compile else SparseMLM(model)
    train_model, optimizer = accelerator.prepare(train_model, optimizer)
    monitor = run.telemetry(model)

    # 5. Resume from the newest checkpoint of this output dir, if any.
    step, position, clock, counters = 0, 0, BudgetClock(), {"skipped_steps": 0}
    resumed = run.resume(identity, model, optimizer)
    if resumed:
        step, position, counters = resumed["step"], resumed["position"], resumed["counters"]
        clock = BudgetClock(resumed["elapsed"])
    batches = GlobalBatches(
        corpus.train, masker, plan, accelerator.process_index, cfg.seed, pad_id, (resumed or {}).get("data")
    )
    run.save_data_position_with(batches.stream_state)  # where a streamed corpus is, in checkpoints
    val_batches = validation_batches(
        corpus.validation, masker, plan.global_batch, plan.micro_batch, tr.eval_batches, cfg.seed, pad_id
    )
    run.start(activation, model, plan, step, accelerator.mixed_precision)

    # 6. The loop: one optimizer step per global batch until the step or time budget is spent.
    budget_s = tr.budget_hours * 3600 or None
    if step == 0 and tr.eval_every_steps:  # the untrained model's loss: the "before" of the run
        run.log_validation(0, evaluate(accelerator, train_model, val_batches))
    clock = BudgetClock(clock.elapsed_before)  # the budget starts with the first step
    scaler = getattr(accelerator, "scaler", None)
    bad_steps = BadStepGuard(
        tr.max_bad_steps, tr.max_overflow_steps, counters, scaler.get_scale if scaler else None
    )
    with StopSignals() as signals:  # SIGTERM/SIGINT: finish the step, checkpoint, exit
        while True:
            micro_batches = batches.step_batches(step, position)
            # every decision below (stop, lr, evaluate, checkpoint) uses these agreed values only
            masked, stop, elapsed = step_values(
                accelerator, count_masked(micro_batches), signals.requested, clock.elapsed()
            )
            if stop or (tr.max_steps and step >= tr.max_steps) or (budget_s and elapsed >= budget_s):
                break
            lr = tr.lr * schedule(schedule.progress_of(step, tr.max_steps, elapsed, budget_s))
            set_lr(optimizer, lr)
            with monitor.window(step):
                result = train_step(accelerator, train_model, optimizer, micro_batches, masked, tr.grad_clip)
            bad_steps.record(result, step, run.warn)  # skipped if not finite; abort after K in a row
            step, position = step + 1, position + plan.global_batch
            run.log_step(step, result, masked, lr, plan, clock.elapsed(), budget_s)
            if tr.eval_every_steps and step % tr.eval_every_steps == 0:
                with clock.paused():
                    run.log_validation(step, evaluate(accelerator, train_model, val_batches))
            if run.checkpoint_due(step, elapsed):  # the agreed clock: all processes decide alike
                with clock.paused():
                    run.save_checkpoint(
                        step, position, clock.elapsed(), counters, identity, model, optimizer, elapsed
                    )

    # 7. Interrupted: save and leave, the same command resumes. Finished: final model + summary.
    if stop:
        run.save_checkpoint(step, position, clock.elapsed(), counters, identity, model, optimizer)
        run.print(f"stopped by {signals.name} at step {step}; run the same command to resume")
        return 128 + signals.number
    val_loss = (
        run.last_val_loss if run.last_val_step == step else evaluate(accelerator, train_model, val_batches)
    )
    run.log_validation(step, val_loss)
    run.save_checkpoint(step, position, clock.elapsed(), counters, identity, model, optimizer)
    on_main(accelerator, lambda: save_model(model, run.dir / "final", tokenizer=corpus.tokenizer))
    run.finish(
        identity, step, position, clock.elapsed(), val_loss, counters, monitor, time.perf_counter() - started
    )
    return 0
