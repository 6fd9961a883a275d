"""Entry-point discovery: third-party plugins, broken plugins, unknown names."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

import mmhash
from mmhash.errors import PluginError, UnknownNameError
from mmhash.registry import get_hasher, get_hasher_class, list_hashers, load_hasher


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """A distribution on sys.path whose entry points name a good, a broken and a bogus plugin."""
    (tmp_path / "thirdparty_hash.py").write_text(textwrap.dedent('''
        from mmhash.hashers.rp import RandomProjectionHasher

        class ThirdParty(RandomProjectionHasher):
            """A third party's hasher."""
            name = "thirdparty"

        class Misnamed(RandomProjectionHasher):
            name = "something-else"

        class TakesKwargs(RandomProjectionHasher):
            name = "takes-kwargs"

            def __init__(self, **kwargs):
                super().__init__(**kwargs)

        NOT_A_CLASS = 42
    '''))
    info = tmp_path / "thirdparty_hash-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-hash\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [mmhash.hashers]
        thirdparty = thirdparty_hash:ThirdParty
        broken = no_such_module_for_mmhash:Thing
        bogus = thirdparty_hash:NOT_A_CLASS
        misnamed = thirdparty_hash:Misnamed
        takes-kwargs = thirdparty_hash:TakesKwargs
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("thirdparty_hash", None)


def test_builtin_rp_is_found_through_entry_points():
    info = {h.name: h for h in list_hashers()}["rp"]
    assert info.available and info.distribution == "mmhash"
    assert info.target == "mmhash.hashers.rp:RandomProjectionHasher"


def test_third_party_plugin_is_registered_like_builtins(fake_distribution):
    hasher = get_hasher("thirdparty", n_bits=8)
    assert type(hasher).__name__ == "ThirdParty" and hasher.n_bits == 8
    infos = {h.name: h for h in list_hashers()}
    assert infos["thirdparty"].available
    assert infos["thirdparty"].distribution == "thirdparty-hash"
    assert infos["thirdparty"].summary == "A third party's hasher."


def test_broken_plugins_are_listed_unavailable_with_reason(fake_distribution):
    infos = {h.name: h for h in list_hashers()}
    assert not infos["broken"].available
    assert "no_such_module_for_mmhash" in infos["broken"].reason
    assert not infos["bogus"].available and "BaseHasher" in infos["bogus"].reason
    assert not infos["misnamed"].available and "something-else" in infos["misnamed"].reason
    assert infos["rp"].available  # one bad plugin does not take the others down
    with pytest.raises(PluginError, match="failed to import"):
        get_hasher("broken")


def test_plugin_taking_kwargs_is_unavailable_with_the_reason(fake_distribution):
    info = {h.name: h for h in list_hashers()}["takes-kwargs"]
    assert not info.available
    assert "thirdparty_hash:TakesKwargs" in info.reason and "**kwargs" in info.reason
    assert "explicit keyword parameters" in info.reason
    with pytest.raises(PluginError, match="its __init__ takes \\*\\*kwargs"):
        get_hasher_class("takes-kwargs")


def test_register_refuses_kwargs_and_taken_names_but_not_the_same_class():
    from mmhash_baselines.cvh import CVH

    from mmhash.hashers.rp import RandomProjectionHasher

    class Loose(RandomProjectionHasher):
        name = "loose-test"

        def __init__(self, *args, **options):
            super().__init__(*args, **options)

    class Impostor(RandomProjectionHasher):
        name = "cvh"

    with pytest.raises(PluginError, match=r"Loose\) cannot be registered: its __init__ takes "
                                          r"\*args, \*\*options"):
        mmhash.register(Loose)
    with pytest.raises(PluginError) as info:
        mmhash.register(Impostor)
    assert "Impostor as 'cvh'" in str(info.value)
    assert "belongs to mmhash_baselines.cvh:CVH" in str(info.value)
    assert get_hasher_class("cvh") is CVH
    try:
        assert mmhash.register(CVH) is CVH and mmhash.register(CVH) is CVH  # no-op
        assert get_hasher_class("cvh") is CVH
    finally:
        mmhash.registry.unregister("cvh")


def test_unknown_name_lists_choices_and_suggests():
    with pytest.raises(UnknownNameError) as info:
        get_hasher_class("rrp")
    message = str(info.value)
    assert "did you mean 'rp'" in message and "rp" in message.split("choose from:")[1]


def test_unknown_constructor_parameter_is_named():
    with pytest.raises(UnknownNameError, match="nbits"):
        get_hasher("rp", nbits=16)


def test_runtime_register_and_load_hasher(tmp_path):
    from mmhash.hashers.rp import RandomProjectionHasher

    @mmhash.register
    class Local(RandomProjectionHasher):
        name = "local-test"

    try:
        rng = np.random.default_rng(0)
        views = {"a": rng.standard_normal((20, 4)), "b": rng.standard_normal((20, 3))}
        hasher = get_hasher("local-test", n_bits=8).fit(views)
        hasher.save(tmp_path / "h.npz")
        again = load_hasher(tmp_path / "h.npz")
        assert type(again) is Local
        assert (again.encode(views["b"], "b") == hasher.encode(views["b"], "b")).all()
    finally:
        mmhash.registry.unregister("local-test")


def test_import_mmhash_is_light():
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sys, mmhash; "
                          "print('torch' in sys.modules, 'mmhash_baselines' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
