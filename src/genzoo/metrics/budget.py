"""How much work one call may take on at once: a memory budget for evaluation.

An evaluation that batches images (or draws) through a network holds, at its peak, roughly the
outputs of the network's layers for every item in the batch. The size of one item's outputs is
measured, not guessed: :func:`leaf_output_bytes` runs the computation once on a single item and adds
up the tensors every leaf module returns (conv, linear, activation and norm layers: the decoder's
activations and its output). The estimate of one item's working set is :data:`SLACK` times that
(the functional steps between modules, e.g. a softmax over the output, and the allocator's slack),
and a call takes ``budget // estimate`` items, at least one. The default budget, :data:`MEMORY_BUDGET`,
is 1 GiB: with the model, the data and Python itself, an evaluation stays within a few GiB whatever
the user asks for (k, images, batch size).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

MEMORY_BUDGET = 2**30  # bytes one batched call may hold at once (1 GiB)
SLACK = 2  # estimated working set of one item = SLACK x its leaf modules' outputs


def leaf_output_bytes(model: torch.nn.Module, fn: Callable[[], object]) -> int:
    """Bytes of every tensor the leaf modules of ``model`` output while ``fn()`` runs."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        outs = output if isinstance(output, (tuple, list)) else (output,)
        total += sum(t.numel() * t.element_size() for t in outs if isinstance(t, torch.Tensor))

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            fn()
    finally:
        for h in handles:
            h.remove()
    return total


def items_per_call(
    model: torch.nn.Module, one_item: Callable[[], object], most: int, budget: int = MEMORY_BUDGET
) -> tuple[int, int]:
    """(items per call between 1 and ``most``, estimated bytes of one item): what fits ``budget``."""
    per_item = SLACK * max(leaf_output_bytes(model, one_item), 1)
    return max(1, min(most, budget // per_item)), per_item
