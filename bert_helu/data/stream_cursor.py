"""A streamed training set read as the endless sequence of rows the pretraining loop consumes.

Row ``k`` of the sequence is row ``k mod L`` of one pass over the data (``L``, the rows in a full
pass, is learnt when the first pass ends; every pass reads the data in the same order). A stream
that ends without yielding a row is an error, never a loop that waits forever.

Where it is in the stream goes into checkpoints: for a ``datasets.IterableDataset`` that is its
``state_dict()`` (a shard -- a file, or a shard of a hub dataset -- and a row in it), so a resumed
run never re-reads the shards before that one. It does re-read that shard up to the row (datasets
skips within a shard by reading), from where the batch of documents being packed began. A stream
without such a state is read again from the start of its pass, row by row.
"""

from __future__ import annotations

from bert_helu.runtime.errors import UserError

# Reads whose start and end states are kept for ``state_at``: more than the steps built ahead of the
# one being checkpointed.
KEPT_READS = 8


class StreamCursor:
    def __init__(self, dataset, saved: dict | None = None):
        self.dataset = dataset
        self.resumable = hasattr(dataset, "state_dict") and hasattr(dataset, "load_state_dict")
        self._start_state = dataset.state_dict() if self.resumable else None
        self.position = 0  # of the next row the iterator yields
        self.pass_start, self.pass_length = 0, None
        self._iterator = None
        self._states: dict[int, dict] = {}  # where the stream was at the last read's start and end
        if saved:
            self.pass_start, self.pass_length = saved["pass_start"], saved["pass_length"]
            if self.resumable and saved.get("stream") is not None:
                self.dataset.load_state_dict(saved["stream"])
                self._iterator = iter(self.dataset)
                self.position = saved["position"]

    def rows(self, start: int, count: int) -> list:
        """Rows ``[start, start + count)`` of the endless sequence."""
        if self._iterator is None or start != self.position:
            self._seek(start)
        self._remember()
        out = []
        while len(out) < count:
            row = self._next()
            if row is not None:
                out.append(row["input_ids"])
        self._remember()
        return out

    def state_at(self, position: int) -> dict:
        """What a checkpoint taken at ``position`` needs to continue from there."""
        state = {"position": position, "pass_start": self.pass_start, "pass_length": self.pass_length}
        saved = self._states.get(position)
        if saved is not None:
            state.update(saved)
        return state

    def _next(self):
        """The next row, or None when a pass just ended (the next pass has then begun)."""
        try:
            row = next(self._iterator)
        except StopIteration:
            length = self.position - self.pass_start
            if length == 0:
                raise UserError(
                    "the training stream yields no sequence: a full pass over data.sources gave nothing "
                    "to train on (too little text for one sequence of data.seq_len?)"
                ) from None
            self.pass_length, self.pass_start = length, self.position
            self._restart()
            return None
        self.position += 1
        return row

    def _restart(self) -> None:
        """Back to the first row of the data."""
        if self.resumable:
            self.dataset.load_state_dict(self._start_state)
        self._iterator = iter(self.dataset)

    def _seek(self, target: int) -> None:
        """Without a saved state: read from the start of the pass that holds ``target``."""
        while True:
            length = self.pass_length
            self.pass_start = self.position = (target // length) * length if length else 0
            self._restart()
            while self.position < target and self.pass_length == length:
                self._next()
            if self.position == target:
                return
            # the first pass ended before target: its length is known now, jump to target's pass

    def _remember(self) -> None:
        if not self.resumable:
            return
        state = {"pass_start": self.pass_start, "pass_length": self.pass_length}
        state["stream"] = self.dataset.state_dict()
        # the reads of the steps built ahead of the loop (BatchPrefetcher) and the loop's own
        self._states = dict(list(self._states.items())[-(2 * KEPT_READS - 1) :])
        self._states[self.position] = state
