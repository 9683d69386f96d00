import pytest

from bert_helu.runtime import processes


@pytest.mark.parametrize("gpu", [True, False])
def test_processes_run_on_the_cpu_exactly_when_no_gpu_is_visible(monkeypatch, gpu):
    made = {}
    monkeypatch.setattr(processes.torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(processes, "Accelerator", lambda **kwargs: made.update(kwargs))
    processes.make_accelerator("bf16", project_dir="runs/x")
    assert made == {"cpu": not gpu, "mixed_precision": "bf16", "project_dir": "runs/x"}


def test_a_process_can_pretrain_in_fp32_then_fine_tune_in_bf16():
    """What a notebook (or a test session) does on a CPU with native bf16, where fine-tuning's `auto`
    is bf16: accelerate alone refuses the second precision in one process."""
    first = processes.make_accelerator("no")
    assert first.mixed_precision == "no"
    assert processes.make_accelerator("bf16").mixed_precision == "bf16"
    assert processes.make_accelerator("bf16").mixed_precision == "bf16"  # the same again: kept as is
