"""A streamed training set as an endless sequence: wrap-around, resume from a saved position
without re-reading earlier shards, and an empty stream as an error."""

import json

import pytest
from datasets import IterableDataset

from bert_helu.data.stream_cursor import StreamCursor
from bert_helu.runtime.errors import UserError

OPENED = []  # shards the generator opened, in order


def rows_of(shard: str) -> list[int]:
    return {"a": [0, 1, 2, 3], "b": [4, 5, 6], "c": [7, 8, 9]}.get(shard, [])


def generate(shards):
    for shard in shards:
        OPENED.append(shard)
        for value in rows_of(shard):
            yield {"text": str(value)}


def pack(batch):  # a batched map, as the streaming pipeline's tokenize-and-pack step
    return {"input_ids": [[int(t)] for t in batch["text"]]}


def stream(shards=("a", "b", "c")):
    return IterableDataset.from_generator(generate, gen_kwargs={"shards": list(shards)}).map(
        pack, batched=True, batch_size=2, remove_columns=["text"]
    )


def values(rows):
    return [r[0] for r in rows]


def test_the_sequence_wraps_around_after_a_full_pass():
    cursor = StreamCursor(stream())
    got = [v for start in range(0, 25, 5) for v in values(cursor.rows(start, 5))]
    assert got == [k % 10 for k in range(25)]
    assert cursor.pass_length == 10


def test_resume_continues_exactly_without_reopening_earlier_shards():
    cursor = StreamCursor(stream())
    for start in range(0, 18, 6):
        cursor.rows(start, 6)  # a full pass (10 rows), then "a", "b" and the first row of "c"
    saved = json.loads(json.dumps(cursor.state_at(18)))  # as a checkpoint keeps it
    OPENED.clear()
    resumed = StreamCursor(stream(), saved)
    assert values(resumed.rows(18, 6)) == [8, 9, 0, 1, 2, 3]
    # "a" is not read again; "b" is, because the batch of the map being consumed began there
    assert OPENED == ["b", "c", "a"]


def test_without_a_saved_stream_state_it_reads_from_the_start_of_the_pass():
    cursor = StreamCursor(stream())
    assert values(cursor.rows(37, 4)) == [7, 8, 9, 0]
    saved = {"position": 41, "pass_start": 40, "pass_length": 10}  # an old checkpoint: no "stream"
    assert values(StreamCursor(stream(), saved).rows(41, 3)) == [1, 2, 3]


@pytest.mark.parametrize("start", [0, 5])
def test_an_empty_stream_is_an_error_not_an_endless_loop(start):
    with pytest.raises(UserError, match="the training stream yields no sequence"):
        StreamCursor(stream(shards=["empty"])).rows(start, 4)
