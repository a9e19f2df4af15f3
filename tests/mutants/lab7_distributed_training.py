"""Lab 7 mutants: correct alternatives (other idioms, other legal choices) and plausible wrong answers.

Run: ``.venv/bin/pytest tests/test_mutants.py -k lab7 -p no:cacheprovider``.
"""

SCALED_LR_GRADES = ["test_scaled_lr"]
LR_AT_GRADES = ["test_lr_at"]
SHARD_GRADES = ["test_shard_indices", "test_shard_indices_errors"]
RING_GRADES = ["test_ring_allreduce", "test_ring_by_hand"]
BUCKET_GRADES = ["test_GradBuckets", "test_GradBuckets_overlap"]
HIER_GRADES = ["test_hierarchical_allreduce"]


def _scaled(body):
    return f"def scaled_lr(base_lr, base_batch, batch):\n{body}\n"


def _lr(body):
    return f"import math\n\ndef lr_at(step, peak_lr, warmup_steps, total_steps):\n{body}\n"


def _shard(body):
    return f"import math\nimport torch\n\ndef shard_indices(n, rank, world_size, epoch, seed):\n{body}\n"


_CHECK = """    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError("bad rank or world_size")
"""


_DIST = "import torch\nimport torch.distributed as dist\n\n"


def _ring(body):
    return _DIST + f"def ring_allreduce(tensor, group=None):\n{body}\n"


_RING_START = """    world = dist.get_world_size(group)
    if world == 1:
        return
    rank = dist.get_rank(group)
    right, left = (rank + 1) % world, (rank - 1) % world
"""
_RS = """    for s in range(world - 1):
        send, recv = chunks[(rank - s) % world], chunks[(rank - s - 1) % world]
        incoming = torch.empty_like(recv)
        req = dist.isend(send, group=group, group_dst=right)
        dist.recv(incoming, group=group, group_src=left)
        req.wait()
        recv += incoming
"""
_AG = """    for s in range(world - 1):
        send, recv = chunks[(rank + 1 - s) % world], chunks[(rank - s) % world]
        req = dist.isend(send, group=group, group_dst=right)
        dist.recv(recv, group=group, group_src=left)
        req.wait()
"""
_SPLIT = "    chunks = tensor.view(-1).tensor_split(world)\n"


def _ring_std(rs=_RS, ag=_AG, split=_SPLIT, tail=""):
    return _ring(_RING_START + split + rs + ag + tail)


def _buckets(init, ready, start, wait):
    return (_DIST + "class GradBuckets:\n"
            f"    def __init__(self, model, bucket_bytes=2**20, group=None):\n{init}\n\n"
            f"    def _ready(self, param):\n{ready}\n\n"
            f"    def _start_bucket(self):\n{start}\n\n"
            f"    def wait(self):\n{wait}\n")


_B_INIT = """        self.bucket_bytes, self.group = bucket_bytes, group
        self.open, self.open_bytes, self.pending = [], 0, []
        for p in model.parameters():
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(self._ready)"""
_B_READY = """        self.open.append(param)
        self.open_bytes += param.grad.numel() * param.grad.element_size()
        if self.open_bytes >= self.bucket_bytes:
            self._start_bucket()"""
_B_START = """        if self.open:
            flat = torch.cat([p.grad.reshape(-1) for p in self.open])
            work = dist.all_reduce(flat, group=self.group, async_op=True)
            self.pending.append((work, flat, self.open))
        self.open, self.open_bytes = [], 0"""
_B_WAIT = """        self._start_bucket()
        world = dist.get_world_size(self.group)
        for work, flat, params in self.pending:
            work.wait()
            flat /= world
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad.copy_(g.view_as(p.grad))
        self.pending = []"""


def _bk(init=_B_INIT, ready=_B_READY, start=_B_START, wait=_B_WAIT):
    return _buckets(init, ready, start, wait)


def _hier(body):
    return _DIST + f"def hierarchical_allreduce(tensor, node_group, leader_group, leader):\n{body}\n"


EXERCISES = {
    "scaled_lr": {
        "grades": SCALED_LR_GRADES,
        "correct": {
            "ratio_first": _scaled("    return base_lr * (batch / base_batch)"),
            "zero_dim_tensor": _scaled("    import torch\n    return torch.tensor(base_lr, dtype=torch.float64) * batch / base_batch"),
        },
        "wrong": {
            "inverse": _scaled("    return base_lr * base_batch / batch"),
            "square_root_rule": _scaled("    return base_lr * (batch / base_batch) ** 0.5"),
            "floor_division": _scaled("    return base_lr * (batch // base_batch)"),
            "ignores_base_lr": _scaled("    return batch / base_batch"),
            "ignores_base_batch": _scaled("    return base_lr * batch"),
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
    "ring_allreduce": {
        "grades": RING_GRADES,
        "correct": {
            # blocking send/recv: rank 0 listens first, so the ring of sends cannot close into a wait cycle
            "blocking_rank0_listens_first": _ring_std(
                rs="""    for s in range(world - 1):
        send, recv = chunks[(rank - s) % world], chunks[(rank - s - 1) % world]
        incoming = torch.empty_like(recv)
        if rank == 0:
            dist.recv(incoming, group=group, group_src=left)
            dist.send(send.clone(), group=group, group_dst=right)
        else:
            dist.send(send.clone(), group=group, group_dst=right)
            dist.recv(incoming, group=group, group_src=left)
        recv += incoming
""",
                ag="""    for s in range(world - 1):
        send, recv = chunks[(rank + 1 - s) % world], chunks[(rank - s) % world]
        buf = torch.empty_like(recv)
        if rank == 0:
            dist.recv(buf, group=group, group_src=left)
            dist.send(send.clone(), group=group, group_dst=right)
        else:
            dist.send(send.clone(), group=group, group_dst=right)
            dist.recv(buf, group=group, group_src=left)
        recv.copy_(buf)
"""),
            # the mirrored ring (send to the left) with batch_isend_irecv and global peer ranks
            "mirrored_batch_p2p": _ring(
                "    world = dist.get_world_size(group)\n"
                "    if world == 1:\n        return\n"
                "    rank = dist.get_rank(group)\n"
                "    glob = (lambda r: r) if group is None else (lambda r: dist.get_global_rank(group, r))\n"
                "    left, right = glob((rank - 1) % world), glob((rank + 1) % world)\n"
                "    chunks = list(torch.tensor_split(tensor.view(-1), world))\n"
                "    def exchange(send, recv):\n"
                "        ops = [dist.P2POp(dist.isend, send, left, group), dist.P2POp(dist.irecv, recv, right, group)]\n"
                "        for req in dist.batch_isend_irecv(ops):\n            req.wait()\n"
                "    for s in range(world - 1):\n"
                "        recv = chunks[(rank + s + 1) % world]\n"
                "        buf = torch.empty_like(recv)\n"
                "        exchange(chunks[(rank + s) % world], buf)\n"
                "        recv.add_(buf)\n"
                "    for s in range(world - 1):\n"
                "        exchange(chunks[(rank + s - 1) % world], chunks[(rank + s) % world])"),
            # own chunk boundaries (i n / W): another split into W nearly equal chunks
            "own_boundaries": _ring_std(
                split="    flat = tensor.view(-1)\n"
                      "    bounds = [i * flat.numel() // world for i in range(world + 1)]\n"
                      "    chunks = [flat[bounds[i]:bounds[i + 1]] for i in range(world)]\n"),
        },
        "wrong": {
            "reduce_scatter_only": _ring_std(ag=""),
            # chunks of n // W: the last n % W elements are never summed
            "floor_chunks": _ring_std(
                split="    m = tensor.numel() // world\n"
                      "    chunks = [tensor.view(-1)[i * m:(i + 1) * m] for i in range(world)]\n"),
            "mean_not_sum": _ring_std(tail="    tensor /= world\n"),
            # every rank waits to receive before it sends: nobody sends (must fail within the timeout)
            "everyone_receives_first": _ring_std(
                rs="""    for s in range(world - 1):
        send, recv = chunks[(rank - s) % world], chunks[(rank - s - 1) % world]
        incoming = torch.empty_like(recv)
        dist.recv(incoming, group=group, group_src=left)
        dist.send(send, group=group, group_dst=right)
        recv += incoming
"""),
            # right values, not by hand: loses only test_ring_by_hand
            "uses_all_reduce": _ring("    dist.all_reduce(tensor, group=group)"),
            "overwrites_instead_of_adding": _ring_std(rs=_RS.replace("recv += incoming", "recv.copy_(incoming)")),
            "adds_into_the_sent_chunk": _ring_std(rs=_RS.replace("recv += incoming", "send += incoming")),
            "returns_a_new_tensor": _ring(
                "    out = tensor.clone()\n"
                "    world = dist.get_world_size(group)\n"
                "    if world == 1:\n        return out\n"
                "    rank = dist.get_rank(group)\n"
                "    right, left = (rank + 1) % world, (rank - 1) % world\n"
                "    chunks = out.view(-1).tensor_split(world)\n" + _RS + _AG + "    return out"),
        },
    },
    "GradBuckets": {
        "grades": BUCKET_GRADES,
        "correct": {
            "avg_op": _bk(start=_B_START.replace("async_op=True", "op=dist.ReduceOp.AVG, async_op=True"),
                          wait=_B_WAIT.replace("            flat /= world\n", "")),
            "divide_in_the_hook": _bk(
                ready="""        param.grad /= dist.get_world_size(self.group)
        self.open.append(param)
        self.open_bytes += param.grad.numel() * param.grad.element_size()
        if self.open_bytes >= self.bucket_bytes:
            self._start_bucket()""",
                wait=_B_WAIT.replace("            flat /= world\n", "")),
            "offsets_loop": _bk(wait="""        self._start_bucket()
        for work, flat, params in self.pending:
            work.wait()
            at = 0
            for p in params:
                n = p.grad.numel()
                p.grad = (flat[at:at + n] / dist.get_world_size(self.group)).view_as(p.grad).clone()
                at += n
        self.pending.clear()"""),
        },
        "wrong": {
            "sums": _bk(wait=_B_WAIT.replace("            flat /= world\n", "")),
            "forgets_the_last_bucket": _bk(wait=_B_WAIT.replace("        self._start_bucket()\n", "", 1)),
            "copies_back_in_reverse": _bk(wait=_B_WAIT.replace("zip(params, flat.split([p.numel() for p in params]))",
                                                              "zip(params[::-1], flat.split([p.numel() for p in params[::-1]]))")),
            # right values, no overlap: every bucket waits for wait()
            "all_after_backward": _bk(ready=_B_READY.replace("        if self.open_bytes >= self.bucket_bytes:\n"
                                                            "            self._start_bucket()", "        pass")),
            # right values, blocking all_reduce inside the hook: backward stalls instead of overlapping
            "blocking_in_the_hook": _bk(
                start="""        if self.open:
            flat = torch.cat([p.grad.reshape(-1) for p in self.open])
            dist.all_reduce(flat, group=self.group)
            self.pending.append((None, flat, self.open))
        self.open, self.open_bytes = [], 0""",
                wait=_B_WAIT.replace("            work.wait()\n", "            work is None or work.wait()\n")),
            "divides_twice": _bk(wait=_B_WAIT.replace("            flat /= world\n", "            flat /= world * world\n")),
            "hooks_frozen_parameters": _bk(init=_B_INIT.replace("            if p.requires_grad:\n"
                                                                "                p.register", "            p.register")),
            "first_bucket_only": _bk(wait=_B_WAIT.replace("in self.pending:", "in self.pending[:1]:")),
            "zero_for_unused": _bk(
                init=_B_INIT + "\n        self.params = list(model.parameters())",
                wait=_B_WAIT + """
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)"""),
        },
    },
    "hierarchical_allreduce": {
        "grades": HIER_GRADES,
        "correct": {
            "all_reduce_inside": _hier(
                "    dist.all_reduce(tensor, group=node_group)\n"
                "    if leader_group is not None:\n        dist.all_reduce(tensor, group=leader_group)\n"
                "    dist.broadcast(tensor, src=leader, group=node_group)"),
            "group_ranks": _hier(
                "    dist.reduce(tensor, group=node_group, group_dst=0)\n"
                "    if dist.get_rank(node_group) == 0:\n        dist.all_reduce(tensor, group=leader_group)\n"
                "    dist.broadcast(tensor, group=node_group, group_src=0)"),
        },
        "wrong": {
            "no_broadcast": _hier(
                "    dist.reduce(tensor, dst=leader, group=node_group)\n"
                "    if leader_group is not None:\n        dist.all_reduce(tensor, group=leader_group)"),
            "broadcast_before_across": _hier(
                "    dist.reduce(tensor, dst=leader, group=node_group)\n"
                "    dist.broadcast(tensor, src=leader, group=node_group)\n"
                "    if leader_group is not None:\n        dist.all_reduce(tensor, group=leader_group)"),
            "no_reduce_inside": _hier(
                "    if leader_group is not None:\n        dist.all_reduce(tensor, group=leader_group)\n"
                "    dist.broadcast(tensor, src=leader, group=node_group)"),
            "mean": _hier(
                "    dist.reduce(tensor, dst=leader, group=node_group)\n"
                "    if leader_group is not None:\n        dist.all_reduce(tensor, group=leader_group)\n"
                "    dist.broadcast(tensor, src=leader, group=node_group)\n"
                "    tensor /= dist.get_world_size()"),
            # dst/src take GLOBAL ranks: node 1's leader is rank 2, not 0
            "leader_is_rank_0": _hier(
                "    dist.reduce(tensor, dst=0, group=node_group)\n"
                "    if leader_group is not None:\n        dist.all_reduce(tensor, group=leader_group)\n"
                "    dist.broadcast(tensor, src=0, group=node_group)"),
            "inside_only": _hier(
                "    dist.all_reduce(tensor, group=node_group)"),
        },
    },
}
