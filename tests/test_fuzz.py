"""Fuzz `bench validate`: whatever the suite file holds, the answer is exit 0 (valid) or exit 2 with one
line of error, never a traceback (exit 1 from an uncaught exception is a bug).

Three sources of input: arbitrary text in a YAML-ish alphabet, arbitrary bytes, and suites of the valid
shape whose values (and a few keys) are drawn at random. The number of cases tried is printed at the end
(`pytest -s tests/test_fuzz.py`) and checked against a floor."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cli import main

CASES: dict[str, int] = {}
_files = itertools.count()
FUZZ = settings(max_examples=250, deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def report_count():
    yield
    print(f"\nfuzz cases tried: {sum(CASES.values())} ({', '.join(f'{k}: {v}' for k, v in CASES.items())})")


def tried_at_least(kind: str, floor: int):
    """Turn a hypothesis test into a pytest test that also checks it really tried `floor` cases of `kind`.

    The check lives in the same test, so it holds however the file is run (alone, filtered with -k, or in
    any order): a settings profile or a strategy change that silently shrinks the fuzzing fails here."""

    def deco(fuzz):
        def test(folder: Path) -> None:  # no functools.wraps: pytest would then ask for the fuzzed arguments
            before = CASES.get(kind, 0)
            fuzz(folder)
            tried = CASES.get(kind, 0) - before
            assert tried >= floor, f"{fuzz.__name__} tried {tried} {kind} cases, fewer than {floor}"

        test.__name__ = test.__qualname__ = fuzz.__name__
        test.__doc__ = fuzz.__doc__
        return test

    return deco


def validate(folder: Path, content: str | bytes, kind: str) -> None:
    CASES[kind] = CASES.get(kind, 0) + 1
    path = folder / f"suite{next(_files)}.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    res = CliRunner().invoke(main, ["validate", str(path)])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"uncaught {type(res.exception).__name__} on {content!r}") from res.exception
    assert res.exit_code in (0, 2), (res.exit_code, content, res.output)
    if res.exit_code == 2:
        lines = res.output.strip("\n").split("\n")
        assert len(lines) == 1 and lines[0].startswith("error: "), res.output
        assert "Traceback" not in res.output
        assert str(path) in lines[0]  # names the file
    path.unlink()


YAMLISH = st.text(alphabet=st.sampled_from(list("abnmsedt_0123456789.:-[]{},!&*#|>'\"%@`?\n\t ") + ["\u2028", "é", "\x85"]), max_size=120)
KEYWORDS = st.sampled_from(
    ["name: x\n", "dataset: {name: digits}\n", "adapters: {dummy: {}}\n", "seeds: [0]\n", "budget: {steps: 3}\n", "include: base.yaml\n"]
)


@tried_at_least("yaml_text", 220)
@FUZZ
@given(body=st.lists(st.one_of(YAMLISH, KEYWORDS), max_size=6).map("".join))
def test_random_yaml_text(folder: Path, body: str) -> None:
    validate(folder, body, "yaml_text")


@tried_at_least("bytes", 220)
@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes(folder: Path, data: bytes) -> None:
    validate(folder, data, "bytes")


# --- valid-shaped suites with random values ------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["digits", "dummy", "cnn_gan", "bpd", "scratch", "supervised", "encoder", "0" * 64, "x" * 300, "a/b", ".", ""]),
)
values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=6
)


def maybe(valid, p_valid: float = 0.6):
    """Mostly a valid value, sometimes anything: valid-shaped suites reach deeper checks than pure noise."""
    return st.one_of(valid, values) if p_valid < 1 else valid


adapter_keys = st.sampled_from(
    [
        "dummy",
        "cnn_gan",
        "dumy",
        "vae",
        "no_such_module_xyz:Cls",
        ":Cls",
        "json:",
        "json:JSONDecoder",
        "bench.adapter.base:Adapter",
        "a:b:c",
    ]
)
datasets = st.fixed_dictionaries(
    {"name": maybe(st.sampled_from(["digits", "digts", "mnist", "nope"]))},
    optional={
        "image_size": maybe(st.integers(-5, 300)),
        "channels": maybe(st.integers(0, 4)),
        "classes": maybe(st.lists(st.integers(-2, 12), max_size=4)),
        "limit": maybe(st.integers(-2, 100)),
        "levels": maybe(st.integers(0, 300)),
        "download": values,
        "colour": values,  # unknown key
    },
)
strategies = st.fixed_dictionaries(
    {},
    optional={
        "task": maybe(st.sampled_from(["scratch", "supervised", "autoencode", "autoregressive", "generative", "external", "superv1sed"])),
        "source": maybe(datasets),
        "parts": maybe(st.lists(st.sampled_from(["discriminator", "generator", "encoder", "decoder", "x"]), max_size=2)),
        "steps": maybe(st.integers(-3, 50)),
        "freeze": maybe(st.dictionaries(st.sampled_from(["discriminator", "generator"]), st.integers(-2, 5), max_size=2)),
        "lr": maybe(st.floats()),
        "batch_size": maybe(st.integers(-1, 64)),
        "mask_ratio": maybe(st.floats(-1, 2)),
        "path": maybe(st.text(max_size=20)),
        "sha256": maybe(st.sampled_from(["0" * 64, "g" * 64, "abc"])),
    },
)
suites = st.fixed_dictionaries(
    {
        "name": maybe(st.text(min_size=0, max_size=20)),
        "dataset": maybe(datasets),
        "adapters": maybe(
            st.dictionaries(adapter_keys, maybe(st.fixed_dictionaries({}, optional={"lr": values, "width": values})), max_size=2)
        ),
    },
    optional={
        "version": values,
        "description": values,
        "budget": maybe(
            st.fixed_dictionaries({}, optional={"steps": values, "eval_every": values, "batch_size": maybe(st.integers(-1, 99))})
        ),
        "eval": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "num_samples": maybe(st.integers(-1, 5000)),
                    "metrics": maybe(st.lists(st.sampled_from(["bpd", "fid_domain", "modes", "fid", "fdi_domain"]), max_size=3)),
                    "batch_size": values,
                    "kid_subset_size": values,
                    "history_metrics": values,
                },
            )
        ),
        "seeds": maybe(st.lists(st.integers(-5, 2**70), max_size=3)),
        "strategies": maybe(st.dictionaries(st.text(max_size=10), maybe(strategies), max_size=2)),
        "runner": maybe(
            st.fixed_dictionaries(
                {},
                optional={k: values for k in ("amp", "compile", "log_every", "checkpoint_every", "threads", "diverge_threshold", "speed")},
            )
        ),
        "include": maybe(st.sampled_from(["base.yaml", "missing.yaml", "suite0.yaml", "."])),
        "adapterz": values,  # misspelled top-level key
    },
)


@pytest.fixture(scope="module", autouse=True)
def base_file(folder: Path) -> None:
    """`include: base.yaml` resolves to a real file, so includes get exercised too."""
    (folder / "base.yaml").write_text("name: base\ndataset: {name: digits}\nadapters: {dummy: {}}\nbudget: {steps: 5}\n")


@tried_at_least("valid_shaped", 360)
@settings(FUZZ, max_examples=400)
@given(suite=suites)
def test_valid_shaped_suites_with_random_values(folder: Path, suite: dict) -> None:
    validate(folder, yaml.safe_dump(suite, allow_unicode=True), "valid_shaped")


# --- alias bombs at every key path of the schema ----------------------------------------------------------
# Nine nested levels of `&a`/`*a`: 9^9 values once expanded. safe_load builds it in microseconds (aliases
# share one object); what used to explode was repr() in the error message. Each is placed *inside* a
# valid key, so the schema would otherwise reach it.
def _bomb(level: int) -> str:
    """`&aN [&aN-1 [...], *aN-1 x8]`: each level defined inside the first item of the next, so the first
    item a schema check meets is already the 9^8-value list."""
    if level == 0:
        return "&a0 [" + ", ".join(["lol"] * 9) + "]"
    return f"&a{level} [{_bomb(level - 1)}, " + ", ".join([f"*a{level - 1}"] * 8) + "]"


BOMB = _bomb(8)
BOMB_BASE = {
    "name": "bomb",
    "description": "d",
    "version": 1,
    "dataset": {
        "name": "digits",
        "image_size": 8,
        "channels": 1,
        "classes": [0, 1],
        "limit": 50,
        "levels": 17,
        "root": "r",
        "download": False,
    },
    "budget": {"steps": 4, "eval_every": 0, "batch_size": 8},
    "eval": {
        "num_samples": 20,
        "metrics": ["bpd"],
        "batch_size": 10,
        "kid_subset_size": 10,
        "weights_path": "w",
        "history_metrics": ["bpd"],
    },
    "seeds": [0],
    "adapters": {"dummy": {"lr": 0.1}},
    "strategies": {
        "s": {
            "task": "supervised",
            "source": {"name": "digits", "classes": [0]},
            "parts": ["logits"],
            "steps": 2,
            "freeze": {"logits": 1},
            "batch_size": 8,
            "lr": 0.001,
            "mask_ratio": 0.0,
            "path": "p",
            "sha256": "0" * 64,
            "timm_model": "t",
        }
    },
    "runner": {k: None for k in ("threads", "diverge_threshold")} | {"log_every": 1, "checkpoint_every": 0, "amp": True},
    "include": None,
}


def key_paths(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        path = f"{prefix}{k}"
        out.append(path)
        if isinstance(v, dict):
            out += key_paths(v, path + ".")
    return out


@pytest.mark.parametrize("path", key_paths(BOMB_BASE))
def test_alias_bomb_at_every_key_path(folder: Path, path: str) -> None:
    import copy
    import time

    data = copy.deepcopy(BOMB_BASE)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[last] = "BOMB_HERE"
    text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False).replace("BOMB_HERE", BOMB)
    t0 = time.perf_counter()
    validate(folder, text, "alias_bomb")
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("path", [p for p in key_paths(BOMB_BASE) if p not in ("include",)])
def test_error_messages_are_bounded_even_past_the_yaml_check(path: str) -> None:
    """A dict built in Python shares objects just as aliases do. The schema's messages must stay bounded
    for it too (parse_suite is reached without the YAML checks), and load_suite(dict) refuses it."""
    import copy
    import time

    from bench.core.errors import BenchError
    from bench.suite.load import load_suite, parse_suite

    bomb: list = ["lol"] * 9
    for _ in range(8):
        bomb = [bomb] * 9
    data = copy.deepcopy(BOMB_BASE)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[last] = bomb
    t0 = time.perf_counter()
    with pytest.raises(BenchError) as err:
        parse_suite(data)
    assert len(str(err.value)) < 700
    with pytest.raises(BenchError, match="aliases"):
        load_suite(data)
    assert time.perf_counter() - t0 < 10
