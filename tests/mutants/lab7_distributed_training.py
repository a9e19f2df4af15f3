"""Lab 7 mutants: correct alternatives (other idioms, other legal choices) and plausible wrong answers.

Run: ``.venv/bin/pytest tests/test_mutants.py -k lab7 -p no:cacheprovider``.
"""

SCALED_LR_GRADES = ["test_scaled_lr"]
LR_AT_GRADES = ["test_lr_at"]
SHARD_GRADES = ["test_shard_indices", "test_shard_indices_errors"]
ALLREDUCE_GRADES = ["test_allreduce_mean_grads"]
RING_GRADES = ["test_ring_allreduce_seconds"]


def _scaled(body):
    return f"def scaled_lr(base_lr, base_batch, batch):\n{body}\n"


def _lr(body):
    return f"import math\n\ndef lr_at(step, peak_lr, warmup_steps, total_steps):\n{body}\n"


def _shard(body):
    return f"import math\nimport torch\n\ndef shard_indices(n, rank, world_size, epoch, seed):\n{body}\n"


_CHECK = """    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError("bad rank or world_size")
"""


def _reduce(body):
    return f"import torch\nimport torch.distributed as dist\n\ndef allreduce_mean_grads(model):\n{body}\n"


def _ring(body):
    return f"import math\n\ndef ring_allreduce_seconds(n_bytes, world_size, bandwidth, latency):\n{body}\n"


EXERCISES = {
    "scaled_lr": {
        "grades": SCALED_LR_GRADES,
        "correct": {
            "ratio_first": _scaled("    return base_lr * (batch / base_batch)"),
            "numpy_float": _scaled("    import numpy as np\n    return np.float64(base_lr) * np.float64(batch) / base_batch"),
            "zero_dim_tensor": _scaled("    import torch\n    return torch.tensor(base_lr, dtype=torch.float64) * batch / base_batch"),
        },
        "wrong": {
            "inverse": _scaled("    return base_lr * base_batch / batch"),
            "square_root_rule": _scaled("    return base_lr * (batch / base_batch) ** 0.5"),
            "floor_division": _scaled("    return base_lr * (batch // base_batch)"),
            "ignores_base_lr": _scaled("    return batch / base_batch"),
            "ignores_base_batch": _scaled("    return base_lr * batch"),
            "additive": _scaled("    return base_lr + batch / base_batch"),
            "squared": _scaled("    return base_lr * (batch / base_batch) ** 2"),
            "rounded": _scaled("    return round(base_lr * batch / base_batch, 3)"),
            # "it may be smaller than base_batch": the rule scales down too
            "never_scales_down": _scaled("    return base_lr * max(1.0, batch / base_batch)"),
        },
    },
    "lr_at": {
        "grades": LR_AT_GRADES,
        "correct": {
            "min_ramp_cos_squared": _lr(
                "    if warmup_steps and step < warmup_steps:\n"
                "        return peak_lr * min(1.0, (step + 1) / warmup_steps)\n"
                "    p = (step - warmup_steps) / (total_steps - warmup_steps)\n"
                "    return peak_lr * math.cos(math.pi / 2 * p) ** 2"),
            "numpy": _lr(
                "    import numpy as np\n"
                "    if step < warmup_steps:\n"
                "        return float(np.linspace(peak_lr / warmup_steps, peak_lr, warmup_steps)[step])\n"
                "    t = np.pi * (step - warmup_steps) / (total_steps - warmup_steps)\n"
                "    return float(peak_lr * (1 + np.cos(t)) / 2)"),
            "fractions": _lr(
                "    warm = step < warmup_steps\n"
                "    factor = (step + 1) / warmup_steps if warm else (1 + math.cos(math.pi * (step - warmup_steps)"
                " / (total_steps - warmup_steps))) / 2\n"
                "    return factor * peak_lr"),
        },
        "wrong": {
            "warmup_starts_at_zero": _lr(
                "    if step < warmup_steps:\n        return peak_lr * step / warmup_steps\n"
                "    return peak_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps)))"),
            "no_decay": _lr("    if step < warmup_steps:\n        return peak_lr * (step + 1) / warmup_steps\n    return peak_lr"),
            "decay_over_total": _lr(
                "    if step < warmup_steps:\n        return peak_lr * (step + 1) / warmup_steps\n"
                "    return peak_lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))"),
            "linear_decay": _lr(
                "    if step < warmup_steps:\n        return peak_lr * (step + 1) / warmup_steps\n"
                "    return peak_lr * (1 - (step - warmup_steps) / (total_steps - warmup_steps))"),
            "boundary_off_by_one": _lr(
                "    if step <= warmup_steps and warmup_steps:\n        return peak_lr * (step + 1) / warmup_steps\n"
                "    return peak_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps)))"),
            "full_cosine": _lr(
                "    if step < warmup_steps:\n        return peak_lr * (step + 1) / warmup_steps\n"
                "    return peak_lr * math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps))"),
            "warmup_forgets_peak": _lr(
                "    if step < warmup_steps:\n        return (step + 1) / warmup_steps\n"
                "    return peak_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps)))"),
            "crashes_without_warmup": _lr(
                "    ramp = (step + 1) / warmup_steps\n"
                "    if step < warmup_steps:\n        return peak_lr * ramp\n"
                "    return peak_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps)))"),
            "warmup_over_w_plus_one": _lr(
                "    if step < warmup_steps:\n        return peak_lr * (step + 1) / (warmup_steps + 1)\n"
                "    return peak_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps)))"),
            "decay_counts_from_step_plus_one": _lr(
                "    if step < warmup_steps:\n        return peak_lr * (step + 1) / warmup_steps\n"
                "    return peak_lr * 0.5 * (1 + math.cos(math.pi * (step + 1 - warmup_steps) / (total_steps - warmup_steps)))"),
            # 0 <= W <= S: a run that is all warm-up never reaches the decay, whose S - W is then 0
            "crashes_when_all_steps_warm_up": _lr(
                "    progress = (step - warmup_steps) / (total_steps - warmup_steps)\n"
                "    if step < warmup_steps:\n        return peak_lr * (step + 1) / warmup_steps\n"
                "    return peak_lr * 0.5 * (1 + math.cos(math.pi * progress))"),
            "decays_to_zero_at_last_step": _lr(
                "    if step < warmup_steps:\n        return peak_lr * (step + 1) / warmup_steps\n"
                "    last = max(1, total_steps - warmup_steps - 1)\n"
                "    return peak_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / last))"),
        },
    },
    "shard_indices": {
        "grades": SHARD_GRADES,
        "correct": {
            "contiguous_blocks": _shard(
                _CHECK + "    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))\n"
                "    m = math.ceil(n / world_size)\n"
                "    padded = order.repeat(math.ceil(m * world_size / n))[:m * world_size]\n"
                "    return padded[rank * m:(rank + 1) * m]"),
            "numpy_rng_list": _shard(
                _CHECK + "    import numpy as np\n"
                "    order = np.random.default_rng([seed, epoch]).permutation(n)\n"
                "    m = -(-n // world_size)\n"
                "    padded = np.resize(order, m * world_size)\n"
                "    return [int(i) for i in padded[rank::world_size]]"),
            "python_random_cycle": _shard(
                "    import itertools, random\n"
                "    if world_size < 1 or rank < 0 or rank >= world_size:\n"
                "        raise ValueError('rank must be in [0, world_size)')\n"
                "    order = list(range(n))\n"
                "    random.Random(seed * 1_000_003 + epoch).shuffle(order)\n"
                "    total = math.ceil(n / world_size) * world_size\n"
                "    padded = list(itertools.islice(itertools.cycle(order), total))\n"
                "    return padded[rank::world_size]"),
            "distributed_sampler": _shard(
                "    from torch.utils.data import DistributedSampler\n"
                "    if world_size < 1:\n        raise ValueError('world_size must be >= 1')\n"
                "    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)\n"
                "    sampler.set_epoch(epoch)\n"
                "    return list(sampler)"),
            "argsort_of_uniforms": _shard(
                _CHECK + "    g = torch.Generator().manual_seed(1_000_003 * seed + epoch)\n"
                "    order = torch.argsort(torch.rand(n, generator=g, dtype=torch.float64))\n"
                "    m = math.ceil(n / world_size)\n"
                "    padded = torch.cat([order] * math.ceil(m * world_size / n))[:m * world_size]\n"
                "    return padded.view(world_size, m)[rank]"),
        },
        "wrong": {
            # issue 24: a random ROTATION of range(n) is not a shuffle: neighbours stay together, and on a
            # data set sorted by class each rank gets a run of one class
            "random_rotation": _shard(
                _CHECK + "    g = torch.Generator().manual_seed(seed + epoch)\n"
                "    start = int(torch.randint(n, (1,), generator=g))\n"
                "    order = torch.roll(torch.arange(n), -start)\n"
                "    m = math.ceil(n / world_size)\n"
                "    padded = order.repeat(math.ceil(m * world_size / n))[:m * world_size]\n"
                "    return padded[rank * m:(rank + 1) * m]"),
            "random_rotation_strided": _shard(
                _CHECK + "    g = torch.Generator().manual_seed(seed + epoch)\n"
                "    order = torch.roll(torch.arange(n), -int(torch.randint(n, (1,), generator=g)))\n"
                "    m = math.ceil(n / world_size)\n"
                "    return order.repeat(math.ceil(m * world_size / n))[:m * world_size][rank::world_size]"),
            "rotation_or_reversal": _shard(
                _CHECK + "    g = torch.Generator().manual_seed(seed + epoch)\n"
                "    start, flip = int(torch.randint(n, (1,), generator=g)), bool(torch.randint(2, (1,), generator=g))\n"
                "    order = torch.roll(torch.arange(n), -start)\n"
                "    order = order.flip(0) if flip else order\n"
                "    m = math.ceil(n / world_size)\n"
                "    padded = order.repeat(math.ceil(m * world_size / n))[:m * world_size]\n"
                "    return padded[rank * m:(rank + 1) * m]"),
            "random_affine_stride": _shard(
                _CHECK + "    g = torch.Generator().manual_seed(seed + epoch)\n"
                "    steps = [a for a in range(1, max(n, 2)) if math.gcd(a, n) == 1] or [1]\n"
                "    a = steps[int(torch.randint(len(steps), (1,), generator=g))]\n"
                "    b = int(torch.randint(n, (1,), generator=g))\n"
                "    order = (torch.arange(n) * a + b) % n\n"
                "    m = math.ceil(n / world_size)\n"
                "    return order.repeat(math.ceil(m * world_size / n))[:m * world_size][rank::world_size]"),
            "shuffles_within_rotated_blocks": _shard(
                _CHECK + "    g = torch.Generator().manual_seed(seed + epoch)\n"
                "    m = math.ceil(n / world_size)\n"
                "    start = int(torch.randint(n, (1,), generator=g))\n"
                "    run = torch.roll(torch.arange(n), -start).repeat(math.ceil(m * world_size / n))[:m * world_size]\n"
                "    share = run[rank * m:(rank + 1) * m]\n"
                "    return share[torch.randperm(m, generator=g)]"),
            "no_padding": _shard(
                _CHECK + "    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))\n"
                "    return order[rank::world_size]"),
            "drops_the_remainder": _shard(
                _CHECK + "    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))\n"
                "    m = n // world_size\n    return order[:m * world_size][rank::world_size]"),
            "seeded_by_rank": _shard(
                _CHECK + "    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch + rank))\n"
                "    m = math.ceil(n / world_size)\n"
                "    return order.repeat(math.ceil(m * world_size / n))[:m * world_size][rank::world_size]"),
            "ignores_epoch": _shard(
                _CHECK + "    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))\n"
                "    m = math.ceil(n / world_size)\n"
                "    return order.repeat(math.ceil(m * world_size / n))[:m * world_size][rank::world_size]"),
            "ignores_seed": _shard(
                _CHECK + "    order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))\n"
                "    m = math.ceil(n / world_size)\n"
                "    return order.repeat(math.ceil(m * world_size / n))[:m * world_size][rank::world_size]"),
            "reseeds_global_rng": _shard(
                _CHECK + "    torch.manual_seed(seed + epoch)\n    order = torch.randperm(n)\n"
                "    m = math.ceil(n / world_size)\n"
                "    return order.repeat(math.ceil(m * world_size / n))[:m * world_size][rank::world_size]"),
            "unshuffled": _shard(
                _CHECK + "    m = math.ceil(n / world_size)\n"
                "    return torch.arange(n).repeat(math.ceil(m * world_size / n))[:m * world_size][rank::world_size]"),
            "pads_with_index_zero": _shard(
                _CHECK + "    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))\n"
                "    m = math.ceil(n / world_size)\n"
                "    padded = torch.cat([order, torch.zeros(m * world_size - n, dtype=torch.long)])\n"
                "    return padded[rank::world_size]"),
            "same_share_every_epoch": _shard(
                _CHECK + "    m = math.ceil(n / world_size)\n"
                "    share = torch.arange(n).repeat(math.ceil(m * world_size / n))[:m * world_size][rank::world_size]\n"
                "    g = torch.Generator().manual_seed(seed + epoch)\n"
                "    return share[torch.randperm(len(share), generator=g)]"),
            "pads_too_little_when_n_is_small": _shard(
                _CHECK + "    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))\n"
                "    m = math.ceil(n / world_size)\n"
                "    padded = torch.cat([order, order[:m * world_size - n]])\n"
                "    return padded[rank::world_size]"),
            "no_validation": _shard(
                "    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))\n"
                "    m = math.ceil(max(n, 1) / max(world_size, 1))\n"
                "    padded = order.repeat(math.ceil(m * max(world_size, 1) / n))[:m * max(world_size, 1)]\n"
                "    return padded[rank % max(world_size, 1)::max(world_size, 1)]"),
        },
    },
    "allreduce_mean_grads": {
        "grades": ALLREDUCE_GRADES,
        "correct": {
            "one_flat_bucket": _reduce(
                "    grads = [p.grad for p in model.parameters() if p.grad is not None]\n"
                "    if not grads:\n        return\n"
                "    flat = torch.cat([g.reshape(-1) for g in grads])\n"
                "    dist.all_reduce(flat)\n"
                "    flat /= dist.get_world_size()\n"
                "    for g, part in zip(grads, flat.split([g.numel() for g in grads])):\n"
                "        g.copy_(part.view_as(g))"),
            "divide_first": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is not None:\n"
                "            p.grad.div_(dist.get_world_size())\n"
                "            dist.all_reduce(p.grad)"),
            "async_handles": _reduce(
                "    grads = [p.grad for p in model.parameters() if p.grad is not None]\n"
                "    works = [dist.all_reduce(g, async_op=True) for g in grads]\n"
                "    for w in works:\n        w.wait()\n"
                "    for g in grads:\n        g /= dist.get_world_size()"),
            "avg_op": _reduce(                      # gloo has ReduceOp.AVG in recent PyTorch
                "    for p in model.parameters():\n"
                "        if p.grad is not None:\n            dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)"),
            "replaces_grad": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is None:\n            continue\n"
                "        g = p.grad.detach().clone()\n"
                "        dist.all_reduce(g, op=dist.ReduceOp.SUM)\n"
                "        p.grad = g / dist.get_world_size()"),
        },
        "wrong": {
            "sum_only": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is not None:\n            dist.all_reduce(p.grad)"),
            "divides_by_parameter_count": _reduce(
                "    params = [p for p in model.parameters() if p.grad is not None]\n"
                "    for p in params:\n        dist.all_reduce(p.grad)\n        p.grad /= len(params)"),
            "reduce_to_rank_0": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is not None:\n"
                "            dist.reduce(p.grad, dst=0)\n            p.grad /= dist.get_world_size()"),
            "broadcast_rank_0": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is not None:\n            dist.broadcast(p.grad, src=0)"),
            "result_discarded": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is not None:\n"
                "            g = p.grad.clone()\n            dist.all_reduce(g)\n            g /= dist.get_world_size()"),
            "skips_biases": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is not None and p.dim() > 1:\n"
                "            dist.all_reduce(p.grad)\n            p.grad /= dist.get_world_size()"),
            "hard_coded_two_ranks": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is not None:\n            dist.all_reduce(p.grad)\n            p.grad /= 2"),
            "max_instead_of_mean": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is not None:\n            dist.all_reduce(p.grad, op=dist.ReduceOp.MAX)"),
            "zeros_for_missing_grads": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is None:\n            p.grad = torch.zeros_like(p)\n"
                "        dist.all_reduce(p.grad)\n        p.grad /= dist.get_world_size()"),
            "averages_weights_instead": _reduce(
                "    for p in model.parameters():\n"
                "        dist.all_reduce(p.data)\n        p.data /= dist.get_world_size()"),
            "first_parameter_only": _reduce(
                "    for p in model.parameters():\n"
                "        if p.grad is not None:\n"
                "            dist.all_reduce(p.grad)\n            p.grad /= dist.get_world_size()\n            break"),
        },
    },
    "ring_allreduce_seconds": {
        "grades": RING_GRADES,
        "correct": {
            "step_loop": _ring(
                "    t = 0.0\n    for _ in range(2 * (world_size - 1)):\n"
                "        t += latency + n_bytes / world_size / bandwidth\n    return t"),
            "two_phases": _ring(
                "    reduce_scatter = (world_size - 1) * (latency + n_bytes / (world_size * bandwidth))\n"
                "    all_gather = reduce_scatter\n    return reduce_scatter + all_gather"),
            "expanded": _ring(
                "    p = world_size\n    return 2 * (p - 1) * latency + 2 * (p - 1) / p * n_bytes / bandwidth"),
        },
        "wrong": {
            "one_phase": _ring("    return (world_size - 1) * (latency + n_bytes / (world_size * bandwidth))"),
            "whole_message_each_step": _ring("    return 2 * (world_size - 1) * (latency + n_bytes / bandwidth)"),
            "tree_latency": _ring(
                "    return 2 * math.log2(world_size) * latency + 2 * (world_size - 1) / world_size * n_bytes / bandwidth"),
            "bits_not_bytes": _ring("    return 2 * (world_size - 1) * (latency + 8 * n_bytes / (world_size * bandwidth))"),
            "p_steps_not_p_minus_1": _ring("    return 2 * world_size * (latency + n_bytes / (world_size * bandwidth))"),
            "latency_once": _ring("    return latency + 2 * (world_size - 1) * n_bytes / (world_size * bandwidth)"),
            "no_latency": _ring("    return 2 * (world_size - 1) * n_bytes / (world_size * bandwidth)"),
            "latency_per_phase": _ring(
                "    return 2 * latency + 2 * (world_size - 1) * n_bytes / (world_size * bandwidth)"),
            # "A single rank (W = 1) sends nothing"
            "single_rank_pays_latency": _ring(
                "    if world_size == 1:\n        return latency\n"
                "    return 2 * (world_size - 1) * (latency + n_bytes / (world_size * bandwidth))"),
            "milliseconds": _ring("    return 1e3 * 2 * (world_size - 1) * (latency + n_bytes / (world_size * bandwidth))"),
            "bandwidth_upside_down": _ring("    return 2 * (world_size - 1) * (latency + n_bytes * bandwidth / world_size)"),
        },
    },
}
