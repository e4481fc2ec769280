"""A variant describes itself: outside ganpipe/models/ (and the recipe table) no code compares a
variant's name; stages ask ``bundle.description`` (:class:`ganpipe.models.VariantDescription`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ganpipe.models import TINY_OVERRIDES, VARIANTS, build, describe
from tests.conftest import REPO_ROOT

ALLOWED = {Path("ganpipe/models"), Path("ganpipe/training/recipes.py")}


def _names(node: ast.AST, prefix: bool = False) -> list[str]:
    """Variant names among the string constants of ``node`` (``prefix``: also the start of one, "hifigan")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        v = node.value
        return [v] if v in VARIANTS or (prefix and len(v) >= 5 and any(n.startswith(v) for n in VARIANTS)) else []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [n for elt in node.elts for n in _names(elt, prefix)]
    return []


def name_comparisons(source: str) -> list[tuple[int, str]]:
    """(line, name) of every comparison with, startswith of, or mapping keyed by a variant name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                found += [(node.lineno, n) for n in _names(side)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in {"startswith", "endswith"}:
            found += [(node.lineno, n) for arg in node.args for n in _names(arg, prefix=True)]
        elif isinstance(node, ast.Dict):
            found += [(node.lineno, n) for key in node.keys if key is not None for n in _names(key)]
        elif isinstance(node, ast.Match):
            found += [(c.pattern.lineno, n) for c in node.cases for sub in ast.walk(c.pattern)
                      for n in _names(sub)]
    return found


def test_name_comparisons_are_found():
    src = 'a = v == "specgan"\nb = v in ("wavegan", "x")\nc = v.startswith("hifigan")\nd = {"melgan": 1}\ne = "specgan"\n'
    assert [line for line, _ in name_comparisons(src)] == [1, 2, 3, 4]


def test_no_variant_name_is_compared_outside_the_models():
    offenders = []
    for path in sorted([*REPO_ROOT.joinpath("ganpipe").rglob("*.py"), *REPO_ROOT.joinpath("flows").glob("*.py")]):
        rel = path.relative_to(REPO_ROOT)
        if any(rel == a or a in rel.parents for a in ALLOWED):
            continue
        offenders += [f"{rel}:{line}: {name!r}" for line, name in name_comparisons(path.read_text())]
    assert not offenders, ("compare the variant's description (bundle.description / ganpipe.models.describe), "
                           f"not its name: {offenders}")


def test_the_torch_free_catalogue_lists_exactly_the_registered_variants():
    """config.py validates model.variant against ganpipe.models.catalogue without importing torch (a
    dependency of the download/prepare stages would re-run them on every model edit)."""
    import subprocess
    import sys

    from ganpipe.models.catalogue import VARIANT_NAMES

    assert set(VARIANT_NAMES) == set(VARIANTS)
    code = ("import sys, ganpipe.config; from ganpipe.models.catalogue import VARIANT_NAMES; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_an_unknown_variant_fails_at_load_naming_the_allowed_ones():
    from ganpipe.config import ModelParams

    with pytest.raises(ValueError, match=r"unknown variant 'hifigan_v4'; allowed: hifigan_v1, hifigan_v2"):
        ModelParams(variant="hifigan_v4")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_description_matches_the_built_model(variant: str):
    bundle = build(variant, **TINY_OVERRIDES[variant])
    d = bundle.description
    assert d == describe(variant, **TINY_OVERRIDES[variant])
    assert (d.kind == "vocoder") == (bundle.kind == "vocoder") == (d.consumes == "mel")
    assert d.sample_rate == bundle.sample_rate
    if d.kind == "waveform":
        assert d.clip_samples == bundle.output_spec.shape[-1]
    if d.kind == "spectrogram":
        assert d.clip_samples == bundle.generator.spectrogram.audio_length
    if d.subbands:
        assert hasattr(bundle.generator, "forward_subbands") and hasattr(bundle.generator, "pqmf")
    assert set(d.mel_params) <= set(bundle.config) and d.label_option in bundle.config


@pytest.mark.parametrize("variant", ["mel_mlp_gan", "wavegan", "hifigan_v3"])
def test_label_conditioning_uses_the_variants_own_option(variant: str):
    """The trainer sets the label count through the description's ``label_option`` (mel_mlp_gan takes
    ``n_classes``; it was given ``n_speakers`` by a name check and failed to build)."""
    from ganpipe.config import parse_params
    from ganpipe.training.setup import build_bundle

    params = parse_params({"model": {"variant": variant, "overrides": dict(TINY_OVERRIDES[variant]),
                                     "conditioning": "labels"}})
    bundle = build_bundle(params, 3, params.mel_config())
    assert bundle.n_classes == 3 and bundle.discriminator_uses_labels
