"""The pretraining loop of ``python -m pretrain``: processes, model, resume, steps, checkpoints, summary.

``pretrain/__main__.py`` reads and checks the recipe, then calls ``train``; this file holds
everything that needs torch, so that a ``--prepare-only`` cache hit never imports it.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, set_seed

from bert_helu.data import MLMMasker, prepare_corpus
from bert_helu.models.card import pretrained_card
from bert_helu.models.encoders import activation_of, save_model
from bert_helu.models.optimizer import make_optimizer
from bert_helu.models.sparse_mlm import SparseMLM
from bert_helu.pretraining.batches import (
    BatchPlan,
    BatchPrefetcher,
    GlobalBatches,
    count_masked,
    plan_batches,
    validation_batches,
)
from bert_helu.pretraining.checkpoints import RunCheckpoints
from bert_helu.pretraining.log import RunLog
from bert_helu.pretraining.schedules import Schedule
from bert_helu.pretraining.state import RunState
from bert_helu.pretraining.step import BadStepGuard, BudgetClock, evaluate, initial_model, set_lr, train_step
from bert_helu.pretraining.telemetry import TelemetryWindows
from bert_helu.runtime.agreement import StepValues, StopSignals, leave_together, on_main
from bert_helu.runtime.identity import pretrain_identity
from bert_helu.runtime.precision import resolve_mixed_precision
from bert_helu.runtime.processes import make_accelerator
from bert_helu.runtime.trackers import tracker_names


def train(cfg, output_dir: str) -> int:
    """Train (or resume) the run in ``output_dir``; returns the exit code (128 + signal if interrupted)."""
    # 2.-7. below continue the numbered story that pretrain/__main__.py starts.
    tr, run_dir, started = cfg.train, Path(output_dir), time.perf_counter()

    # 2. Data: cleaned, tokenized, packed and cached once, before the processes connect: building
    #    a large corpus takes longer than any collective timeout. The first process to take the
    #    cache's lock builds it; the others wait on the lock, then read the cache.
    corpus = prepare_corpus(cfg.data)
    masker, pad_id = MLMMasker(corpus.tokenizer, tr.mlm_probability), corpus.tokenizer.pad_token_id

    # 3. Processes, devices and precision (accelerate), and how the global batch splits over them.
    accelerator, plan = start_processes(cfg, run_dir)

    # 4. The model, and what the run is: its identity, log and checkpoints. A finished run of the
    #    same identity is not redone.
    model = initial_model(cfg, corpus.tokenizer)
    identity = pretrain_identity(
        cfg, activation_of(model), accelerator.mixed_precision, corpus.fingerprint, corpus.vocabulary
    )
    log = RunLog(run_dir, accelerator, cfg, identity)
    log.preamble(corpus.summary, plan)
    checkpoints = RunCheckpoints(run_dir, accelerator, cfg, identity, log)
    if checkpoints.finished():
        return leave_together(accelerator, 0)
    checkpoints.check_space(model)
    optimizer = make_optimizer(model, tr)
    eager_model, optimizer = accelerator.prepare(SparseMLM(model), optimizer)
    # compiled after DDP wraps it, so that compilation splits the graph at DDP's gradient buckets
    # and keeps the all-reduce overlapped with backward
    train_model = torch.compile(eager_model) if tr.compile else eager_model

    # 5. Resume from the newest checkpoint of this output dir, if any.
    state = checkpoints.resume(model, optimizer) or RunState(identity)
    batches = GlobalBatches(
        corpus.train, masker, plan, accelerator.process_index, cfg.seed, pad_id, state.data
    )
    val_batches = validation_batches(
        corpus.validation, masker, plan.global_batch, plan.micro_batch, tr.eval_batches, cfg.seed, pad_id
    )
    telemetry = TelemetryWindows(model, cfg.telemetry)
    log.start(model, plan, state.step)

    # 6. The loop: one optimizer step per global batch until the step or time budget is spent. The
    #    host runs ahead of the device: batches are built ahead (BatchPrefetcher), and the step's
    #    results are read back only on logging steps and before a checkpoint.
    schedule, budget_s = Schedule.from_recipe(tr), tr.budget_hours * 3600 or None
    if state.step == 0 and tr.eval_every_steps:  # the untrained model's loss: the "before" of the run
        log.validation(0, evaluate(accelerator, train_model, val_batches))
    clock = BudgetClock(state.elapsed)  # the budget starts (or goes on) with the first step
    scaler = getattr(accelerator, "scaler", None)
    bad_steps = BadStepGuard(tr.max_bad_steps, tr.max_overflow_steps, scaler.get_scale if scaler else None)
    agree = StepValues(accelerator)
    pin = accelerator.device.type == "cuda"
    with StopSignals() as signals, BatchPrefetcher(batches, state.step, state.samples_seen, pin=pin) as ahead:
        while True:  # SIGTERM/SIGINT: finish the step, checkpoint, exit
            micro_batches = ahead.next(state.step, state.samples_seen)
            # every decision below (stop, lr, evaluate, checkpoint) uses these agreed values only
            masked, stop, elapsed = agree(count_masked(micro_batches), signals.requested, clock.elapsed())
            if stop or (tr.max_steps and state.step >= tr.max_steps) or (budget_s and elapsed >= budget_s):
                break
            lr = tr.lr * schedule(schedule.progress_of(state.step, tr.max_steps, elapsed, budget_s))
            set_lr(optimizer, lr)
            with telemetry.window(state.step) as watching:  # hooks fire in the eager model only
                step_model = eager_model if watching else train_model
                result = train_step(accelerator, step_model, optimizer, micro_batches, masked, tr.grad_clip)
            bad_steps.add(state.step, result)  # skipped if not finite; abort after K in a row
            state.advance(plan.global_batch)
            state.elapsed = clock.elapsed()
            evaluating = tr.eval_every_steps and state.step % tr.eval_every_steps == 0
            saving = checkpoints.due(state.step, elapsed)  # the agreed clock: all processes decide alike
            if log.logging_step(state.step) or saving:
                bad_steps.settle(state, log.warn)
            log.step(state, result, masked, lr, budget_s)
            if window := telemetry.take_closed():
                log.telemetry(window)
            if evaluating:
                with clock.paused():
                    log.validation(state.step, evaluate(accelerator, train_model, val_batches))
            if saving:
                with clock.paused():
                    checkpoints.save(
                        snapshot(state, clock, batches), model, optimizer, agreed_elapsed=elapsed
                    )

    # 7. Interrupted: save and leave, the same command resumes. Finished: final model + summary.
    bad_steps.settle(state, log.warn)
    checkpoints.save(snapshot(state, clock, batches), model, optimizer)
    if stop:
        log.print(f"stopped by {signals.name} at step {state.step}; run the same command to resume")
        return leave_together(accelerator, 128 + signals.number)
    val_loss = log.validation_at(state.step)
    if val_loss is None:  # the last step was not an evaluation step
        log.validation(state.step, val_loss := evaluate(accelerator, train_model, val_batches))
    card = pretrained_card(
        model, cfg, name=run_dir.name, location=str(run_dir / "final"), steps=state.step,
        tokens_seen=state.samples_seen * cfg.data.seq_len, validation_loss=val_loss,
        train_seconds=state.elapsed, precision=accelerator.mixed_precision,
    )  # fmt: skip
    on_main(accelerator, lambda: save_model(model, run_dir / "final", tokenizer=corpus.tokenizer, card=card))
    if window := telemetry.close(state.step):
        log.telemetry(window)
    log.finish(state, val_loss, telemetry.last_summary, time.perf_counter() - started)
    return leave_together(accelerator, 0)


def start_processes(cfg, run_dir: Path) -> tuple[Accelerator, BatchPlan]:
    """The accelerator and the batch plan: the recipe's global batch is kept whatever the number
    of processes; the micro-batch is lowered if it does not divide each one's share."""
    tr = cfg.train
    accelerator = make_accelerator(
        resolve_mixed_precision(tr.mixed_precision),
        log_with=tracker_names(cfg.logging, run_dir),
        project_dir=str(run_dir),
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(minutes=tr.collective_timeout_minutes))],
    )
    plan = plan_batches(tr.global_batch_size, tr.micro_batch_size, accelerator.num_processes)
    set_seed(cfg.seed)
    if tr.cpu_threads:
        torch.set_num_threads(tr.cpu_threads)  # on a shared machine fewer threads can be much faster
    return accelerator, plan


def snapshot(state: RunState, clock: BudgetClock, batches: GlobalBatches) -> RunState:
    """``state`` brought up to now for a checkpoint: the budget used and the data stream's cursor."""
    state.elapsed, state.data = clock.elapsed(), batches.stream_state(state.samples_seen)
    return state
