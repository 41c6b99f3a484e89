"""The CPU runtime support is active only without CUDA, and changes only OpenRLHF's modules."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_inactive_when_cuda_is_available() -> None:
    result = run_python(
        "import sys, torch\n"
        "from openrlhf_ext.cpu_runtime import activate_if_no_cuda\n"
        "print(activate_if_no_cuda(lambda: True))\n"
        "print('flash_attn' in sys.modules)\n"
        "try:\n"
        "    import openrlhf.models\n"
        "    print('imported')\n"
        "except ModuleNotFoundError as error:\n"
        "    print('missing', error.name)\n"
        "from openrlhf_ext.cpu_runtime import provide_flash_attn_helpers\n"
        "print(provide_flash_attn_helpers())\n"  # a GPU machine without flash-attn still needs these
        "import openrlhf.models\n"
        "import openrlhf.utils.deepspeed.deepspeed as s\n"
        "print(s.torch is torch)\n"  # the CUDA calls are left alone
    )
    assert result.returncode == 0, result.stderr
    printed = [line for line in result.stdout.split("\n") if line and not line.startswith("[")]
    assert printed == ["False", "False", "missing flash_attn", "True", "True"]


def test_attention_default() -> None:
    from openrlhf_ext.cpu_runtime import default_attn_implementation

    assert default_attn_implementation(lambda: False) == "sdpa"
    assert default_attn_implementation(lambda: True) == "sdpa"  # no flash-attn installed here


def test_active_without_cuda_and_real_torch_untouched() -> None:
    result = run_python(
        "import torch\n"
        "from openrlhf_ext.cpu_runtime import activate_if_no_cuda, default_attn_implementation\n"
        "print(activate_if_no_cuda(lambda: False), default_attn_implementation(lambda: False))\n"
        "import openrlhf.models, openrlhf.trainer.dpo_trainer, openrlhf.cli.train_dpo\n"
        "import openrlhf.utils.deepspeed.deepspeed as s\n"
        "print(s.torch.cuda.current_device(), s.torch.cuda.synchronize(), s.torch.tensor([1]).sum().item())\n"
        "print(torch.cuda.current_device is s.torch.cuda.current_device)\n"
        "from transformers.utils import is_flash_attn_2_available\n"
        "print(is_flash_attn_2_available())\n"
        "from flash_attn.bert_padding import pad_input, unpad_input\n"
        "x = torch.arange(6.).view(2, 3, 1); m = torch.tensor([[1, 1, 0], [1, 0, 0]])\n"
        "flat, idx, cu, mx, _ = unpad_input(x, m)\n"
        "print(flat.flatten().tolist(), cu.tolist(), mx, pad_input(flat, idx, 2, 3).flatten().tolist())\n"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().split("\n")[-5:]
    assert lines == [
        "True sdpa",
        "cpu None 1",
        "False",
        "False",
        "[0.0, 1.0, 3.0] [0, 2, 3] 2 [0.0, 1.0, 0.0, 3.0, 0.0, 0.0]",
    ]
