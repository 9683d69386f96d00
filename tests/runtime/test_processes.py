import pytest

from bert_helu.runtime import processes


@pytest.mark.parametrize("gpu", [True, False])
def test_processes_run_on_the_cpu_exactly_when_no_gpu_is_visible(monkeypatch, gpu):
    made = {}
    monkeypatch.setattr(processes.torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(processes, "Accelerator", lambda **kwargs: made.update(kwargs))
    processes.make_accelerator("bf16", project_dir="runs/x")
    assert made == {"cpu": not gpu, "mixed_precision": "bf16", "project_dir": "runs/x"}
