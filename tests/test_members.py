"""Ensemble members shared between processes (bench.metrics.members): two processes that need the same
extractor at once split its members, and the ensemble they assemble is the one a single process trains alone,
bit for bit, and no member is trained twice; member files are sealed and checked."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import torch
from torch import nn

from bench.data.datasets import DatasetSpec, load_dataset
from bench.metrics import domain as dom
from bench.metrics import domain_cache as dcache
from bench.metrics import domain_net, ssl, ssl_net
from bench.metrics.members import MemberFiles, shared_members
from bench.metrics.ssl_net import SSLConfig

CFG = dom.TrainConfig(members=4, steps=30)  # short: this is about who trains what, not accuracy
SSL_CFG = SSLConfig(members=4, steps=6, batch_size=32, width=4, feature_dim=8, proj_dim=4)
SPEC = DatasetSpec(name="digits", classes=(5, 6, 7, 8, 9), limit=100)


def _build(kind: str, cache: str, start, out) -> None:
    """A process that needs the extractor: builds it (sharing its members) and reports its weights' sha256
    and how many members it trained itself. Each member takes a second longer than it needs to, so that the
    two processes overlap however fast they start."""
    torch.set_num_threads(1)
    module, name = (domain_net, "_train_loop") if kind == "domain" else (ssl, "train_member")
    real, trained = getattr(module, name), []

    def slow(*args, **kwargs):
        trained.append(1)
        time.sleep(1.0)
        return real(*args, **kwargs)

    setattr(module, name, slow)
    data = load_dataset(SPEC)
    start.wait(timeout=120)
    if kind == "domain":
        got = dom.get_domain_classifier(data, "cpu", Path(cache), CFG)
    else:
        got = ssl.get_ssl_extractor(data, "cpu", Path(cache), SSL_CFG)
    out.put((got.info["weights_sha256"], len(trained)))


def _two_processes(kind: str, cache: Path, members: int) -> list[str]:
    """The two processes' weights sha256; each trained some members and no member was trained twice."""
    ctx = mp.get_context("spawn")
    out, start = ctx.Queue(), ctx.Barrier(2)
    procs = [ctx.Process(target=_build, args=(kind, str(cache), start, out)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    counts = sorted(n for _, n in got)
    assert sum(counts) == members and counts[0] >= 1, f"members trained per process: {counts}"
    return [sha for sha, _ in got]


def test_two_processes_build_the_domain_classifier_one_process_builds(tmp_path: Path) -> None:
    shared = _two_processes("domain", tmp_path / "shared", CFG.members)
    data = load_dataset(SPEC)
    alone = dcache.tensors_sha256(domain_net.train(data, CFG, torch.device("cpu")).state_dict())  # one process, no files
    assert shared == [alone, alone]
    folder = tmp_path / "shared" / "domain"
    assert len(list(folder.glob("*.m*.safetensors"))) == CFG.members  # kept: a late process loads them
    record = dcache.read_record(next(folder.glob("*.json")))
    assert record["weights_sha256"] == alone


def test_two_processes_build_the_label_free_extractor_one_process_builds(tmp_path: Path) -> None:
    shared = _two_processes("ssl", tmp_path / "shared", SSL_CFG.members)
    data = load_dataset(SPEC)
    alone = dcache.tensors_sha256(ssl_net.train(data.reference().train_x, SSL_CFG, torch.device("cpu"))[0].state_dict())
    assert shared == [alone, alone]
    assert len(list((tmp_path / "shared" / "ssl").glob("*.m*.safetensors"))) == SSL_CFG.members


def _tiny(seed: int) -> tuple[nn.Module, float]:
    torch.manual_seed(seed)
    return nn.Linear(3, 2), float(seed) / 10


def test_members_held_elsewhere_are_waited_for_and_loaded(tmp_path: Path) -> None:
    """A member another process is training is skipped on the first pass, then loaded once its file exists;
    only the other members are trained here."""
    files = MemberFiles(tmp_path, "abc")
    seeds = [11, 12, 13]
    trained: list[int] = []

    def train_one(seed: int) -> tuple[nn.Module, float]:
        trained.append(seed)
        if seed == 13:  # by now member 1 (seed 12) has been skipped: its "other process" finishes it
            files.save(1, 12, _tiny(12))
            holder.release()
        return _tiny(seed)

    from bench.store import locks

    holder = locks.try_acquire(files.lock(1))
    assert holder is not None
    # Our own pid holds it, so to this process it is a live holder: exactly another launcher's case.
    got = shared_members(files, seeds, train_one, lambda: nn.Linear(3, 2))
    assert trained == [11, 13]
    ref = [_tiny(s) for s in seeds]
    assert [loss for _, loss in got] == [loss for _, loss in ref]
    assert all(torch.equal(a.weight, b.weight) for (a, _), (b, _) in zip(got, ref, strict=True))


def test_a_member_file_of_another_seed_or_corrupt_is_trained_again(tmp_path: Path) -> None:
    files = MemberFiles(tmp_path, "abc")
    files.save(0, 99, _tiny(99))  # written for another seed under this name
    files.path(1).write_bytes(b"not a safetensors file")
    trained: list[int] = []

    def train_one(seed: int) -> tuple[nn.Module, float]:
        trained.append(seed)
        return _tiny(seed)

    started = time.monotonic()
    got = shared_members(files, [1, 2], train_one, lambda: nn.Linear(3, 2))
    assert trained == [1, 2] and time.monotonic() - started < 30
    assert torch.equal(got[0][0].weight, _tiny(1)[0].weight)
