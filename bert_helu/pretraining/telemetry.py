"""FFN activation telemetry: exact zeros, dead neurons and pre-activation histograms per layer.

``FFNMonitor`` hooks every feed-forward activation module ``ffn_activation_sites`` finds::

    with FFNMonitor(model, collect_histograms=True) as monitor:
        model(**batch)
        stats = monitor.summary()   # JSON-able

It runs inside the pretraining loop, so every forward only launches a few tensor reductions and
adds them into device-resident accumulators: nothing is copied to the CPU (no device sync) until
``summary()`` is called. Definitions, per layer and over the window since the last ``reset()``:

- ``zero_fraction``: share of activation *outputs* that are exactly 0.0 (the sparsity a ReLU-forward
  model gives at inference; ~0 for GELU, which is almost never exactly zero).
- ``dead_fraction``: share of FFN neurons whose output was never > 0 on any counted token
  ("dead" = never positive). Over a short window a rarely firing neuron also counts as dead.
- ``negative_fraction`` / ``band_fraction`` (only with ``band_alpha``): share of pre-activations
  that are < 0, and that lie in HeLU's band (-alpha, 0], where HeLU still passes a gradient.
- ``histogram``: counts of the activation *input* (pre-activation) in ``histogram_bins`` equal bins
  over ``histogram_range``; values outside the range are counted in ``below``/``above``.

Padding: a forward pre-hook on the model picks up ``attention_mask`` when it is passed as a keyword;
tokens where it is 0 are then left out of every statistic. Without a mask every position counts.
Hooks follow the modules that exist when the monitor is created: call ``set_activation`` first.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from bert_helu.models.encoders import activation_of, encoder_of, ffn_activation_sites

# XLNet runs its layers on (time, batch, features) tensors; every other supported FFN is batch-first.
_TIME_FIRST_SITES = {"XLNetFeedForward"}


class _LayerStats:
    """Device-resident accumulators for one FFN layer."""

    def __init__(self, bins: int):
        self.bins = bins
        self.clear()

    def clear(self) -> None:
        # float64 tensor [zeros, counted, below, above, negative, in_band] once the layer has run
        self.values = None
        self.ever_positive = None  # bool tensor [intermediate_size]
        self.histogram = None
        self.minimum = None
        self.maximum = None
        self.calls = 0


class FFNMonitor:
    def __init__(
        self,
        model: nn.Module,
        histogram_bins: int = 320,
        histogram_range: tuple[float, float] = (-8.0, 8.0),
        collect_histograms: bool = False,
        band_alpha: float | None = None,
    ):
        sites = ffn_activation_sites(model)
        if not sites:
            raise ValueError(f"{type(model).__name__}: no feed-forward activation to monitor")
        modules = [getattr(owner, attr) for owner, attr in sites]
        if not all(isinstance(m, nn.Module) for m in modules):
            raise ValueError("FFN activations must be nn.Modules to be hooked (got a plain function)")
        if len({id(m) for m in modules}) != len(modules):
            # one module in several layers would fire every layer's hook: statistics would mix
            raise ValueError("an FFN activation module is shared between layers; layers cannot be told apart")
        low, high = (float(v) for v in histogram_range)
        if not low < high or histogram_bins < 1:
            raise ValueError(f"bad histogram: {histogram_bins} bins over {histogram_range}")
        self.histogram_bins = int(histogram_bins)
        self.histogram_range = (low, high)
        self.collect_histograms = collect_histograms
        self.band_alpha = None if band_alpha is None else float(band_alpha)
        self.site_types = [type(owner).__name__ for owner, _ in sites]
        self.layers = [_LayerStats(self.histogram_bins) for _ in sites]
        self._mask: torch.Tensor | None = None
        self._handles = [model.register_forward_pre_hook(self._capture_mask, with_kwargs=True)]
        self._handles.append(model.register_forward_hook(self._forget_mask))
        for index, module in enumerate(modules):
            self._handles.append(module.register_forward_hook(self._layer_hook(index)))

    # ------------------------------------------------------------------------------ hooks

    def _capture_mask(self, module, args, kwargs):
        mask = kwargs.get("attention_mask")
        self._mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None

    def _forget_mask(self, module, args, output):
        self._mask = None

    def _layer_hook(self, index: int):
        time_first = self.site_types[index] in _TIME_FIRST_SITES

        def hook(module, inputs, output):
            with torch.no_grad():
                self._record(self.layers[index], inputs[0], output, time_first)

        return hook

    def _token_mask(self, output: torch.Tensor, time_first: bool) -> torch.Tensor | None:
        mask = self._mask
        if mask is None or output.dim() != 3:
            return None
        if time_first:
            mask = mask.t()
        return mask.bool() if tuple(mask.shape) == tuple(output.shape[:2]) else None

    def _record(self, stats: _LayerStats, pre: torch.Tensor, out: torch.Tensor, time_first: bool) -> None:
        width = out.shape[-1]
        mask = self._token_mask(out, time_first)
        if mask is None:
            zeros = (out == 0).sum()
            counted = torch.tensor(out.numel(), device=out.device)
            positive = (out > 0).reshape(-1, width).any(dim=0)
        else:
            keep = mask.unsqueeze(-1)
            zeros = ((out == 0) & keep).sum()
            counted = mask.sum() * width
            positive = ((out > 0) & keep).reshape(-1, width).any(dim=0)
        values = torch.zeros(6, dtype=torch.float64, device=out.device)
        values[0] = zeros
        values[1] = counted
        if self.band_alpha is not None:
            pre_kept = pre if mask is None else pre.masked_fill(~mask.unsqueeze(-1), float("nan"))
            values[4] = (pre_kept < 0).sum()  # NaN compares False: padding drops out with no sync
            values[5] = ((pre_kept > -self.band_alpha) & (pre_kept <= 0)).sum()
        if self.collect_histograms:
            # boolean indexing syncs with the device, so masking is only paid for when histograms are on
            kept = (pre[mask] if mask is not None else pre).detach().float().reshape(-1)
            low, high = self.histogram_range
            hist = torch.histc(kept, bins=self.histogram_bins, min=low, max=high)
            values[2] = (kept < low).sum()
            values[3] = (kept > high).sum()
            stats.histogram = hist.double() if stats.histogram is None else stats.histogram + hist
            if kept.numel():
                lo, hi = kept.min(), kept.max()
                stats.minimum = lo if stats.minimum is None else torch.minimum(stats.minimum, lo)
                stats.maximum = hi if stats.maximum is None else torch.maximum(stats.maximum, hi)
        stats.values = values if stats.values is None else stats.values + values
        stats.ever_positive = positive if stats.ever_positive is None else stats.ever_positive | positive
        stats.calls += 1

    # ------------------------------------------------------------------------------ public API

    def reset(self) -> None:
        """Start a new window: forget everything recorded so far."""
        for stats in self.layers:
            stats.clear()

    def summary(self) -> dict:
        """Per-layer statistics of the window (plain Python numbers, JSON-able); copies to CPU once."""
        layers = []
        for index, stats in enumerate(self.layers):
            entry = {"layer": index, "site": self.site_types[index], "forward_calls": stats.calls}
            if stats.values is None:
                entry.update(zero_fraction=None, dead_fraction=None, counted=0, neurons=None)
                layers.append(entry)
                continue
            zeros, counted, below, above, negative, in_band = stats.values.tolist()
            alive = stats.ever_positive
            entry.update(
                zero_fraction=zeros / counted if counted else None,
                dead_fraction=1.0 - alive.float().mean().item(),
                counted=int(counted),
                neurons=alive.numel(),
                dead_neurons=int(alive.numel() - alive.sum().item()),
            )
            if self.band_alpha is not None and counted:
                entry.update(
                    band_alpha=self.band_alpha,
                    negative_fraction=negative / counted,
                    band_fraction=in_band / counted,
                )
            if stats.histogram is not None:
                low, high = self.histogram_range
                step = (high - low) / self.histogram_bins
                entry["histogram"] = {
                    "counts": [int(c) for c in stats.histogram.tolist()],
                    "edges": [low + i * step for i in range(self.histogram_bins + 1)],
                    "below": int(below),
                    "above": int(above),
                    "min": stats.minimum.item() if stats.minimum is not None else None,
                    "max": stats.maximum.item() if stats.maximum is not None else None,
                }
            layers.append(entry)
        return {"layers": layers, "mean": _mean_over_layers(layers)}

    def remove(self) -> None:
        """Unhook the model (statistics stay readable)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> FFNMonitor:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _mean_over_layers(layers: list[dict]) -> dict:
    """Unweighted means over the layers that ran (every layer sees the same tokens)."""
    ran = [layer for layer in layers if layer.get("zero_fraction") is not None]
    keys = ["zero_fraction", "dead_fraction", "negative_fraction", "band_fraction"]
    return {
        key: (sum(layer[key] for layer in ran) / len(ran) if ran else None)
        for key in keys
        if key in keys[:2] or (ran and all(key in layer for layer in ran))
    }


def monitor_model(model, collect_histograms: bool) -> FFNMonitor:
    """An ``FFNMonitor`` on the encoder the training loop calls, with HeLU's band if it is HeLU."""
    band_alpha = None
    if activation_of(model).startswith("helu"):
        owner, attr = ffn_activation_sites(model)[0]
        band_alpha = float(getattr(getattr(owner, attr), "alpha", 0.05))
    return FFNMonitor(encoder_of(model), collect_histograms=collect_histograms, band_alpha=band_alpha)


class TelemetryWindows:
    """``FFNMonitor`` on a window of ``window`` steps every ``every`` steps of a training loop.

    The hooks exist only during a window, so steps outside it pay nothing. When a window ends its
    statistics wait in ``closed`` for the loop to log them (``take_closed``). Per-process statistics.
    """

    def __init__(self, model, cfg: dict):
        self.cfg, self.model, self.monitor, self.window_start = cfg, model, None, 0
        self.closed = None  # the summary of the window that ended last, until taken
        self.last_summary = None  # the last window's summary (kept for the run's summary)

    @contextlib.contextmanager
    def window(self, step: int):
        """Wrap step ``step``'s forward and backward passes; yields whether the step is watched (its
        forward must then run the eager model: hooks added after ``torch.compile`` never fire there)."""
        every, length = self.cfg["every"], self.cfg["window"]
        active = self.cfg["enabled"] and every > 0 and step % every < length
        if active and self.monitor is None:
            hist_every = self.cfg["histogram_every"]
            self.window_start = step
            self.monitor = monitor_model(self.model, bool(hist_every) and step % hist_every < length)
        yield self.monitor is not None
        if self.monitor is not None and (not active or step % every == length - 1):
            self.closed = self.close(step + 1)

    def close(self, step: int) -> dict | None:
        """End the open window (if any) after ``step`` steps; its summary."""
        if self.monitor is None:
            return None
        summary = self.monitor.summary()
        self.monitor.remove()
        self.monitor = None
        self.last_summary = {"step": step, "window_start": self.window_start, **summary}
        return self.last_summary

    def take_closed(self) -> dict | None:
        closed, self.closed = self.closed, None
        return closed
