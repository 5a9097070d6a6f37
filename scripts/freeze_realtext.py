"""Freeze the real-text sources of ``tasks/realtext`` into the repository (run once; the output is committed).

Copies a fixed selection of this interpreter's standard-library files (PSF licence), the licence texts of
``/usr/share/common-licenses`` that permit verbatim copying, and the ``chinese`` file of Debian's
``fortunes-zh`` package (GPL-3+), each compressed with xz, and writes ``MANIFEST.json`` with every source's
origin, licence, size and the sha256 of its uncompressed bytes. The tasks never read the originals: the
interpreter's copies differ between Python versions, so only the frozen copies make samples reproducible.

    python scripts/freeze_realtext.py --fortunes-zh PATH/TO/usr/share/games/fortunes/chinese

(``apt-get download fortunes-zh && dpkg-deb -x fortunes-zh_*.deb x`` gives the file.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import platform
import sysconfig
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "tasks" / "realtext" / "data"

STDLIB_CODE = (
    "argparse.py", "calendar.py", "configparser.py", "csv.py", "difflib.py", "fractions.py", "ftplib.py",
    "functools.py", "gzip.py", "heapq.py", "imaplib.py", "json/__init__.py", "json/decoder.py",
    "json/encoder.py", "logging/__init__.py", "mailbox.py", "pprint.py", "shutil.py", "smtplib.py",
    "statistics.py", "string.py", "tempfile.py", "textwrap.py",
)
STDLIB_PROSE = ("pydoc_data/topics.py",)
# each says "Everyone is permitted to copy and distribute verbatim copies of this license document"
LICENCE_TEXTS = ("GPL-1", "GPL-2", "GPL-3", "LGPL-2.1", "LGPL-3", "GFDL-1.2", "GFDL-1.3")


def _freeze(name: str, raw: bytes, kind: str, origin: str, licence: str, licence_file: str) -> dict[str, object]:
    rel = Path(kind) / (name.replace("/", "__") + ".xz")
    out = DATA / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
    return {"name": name, "file": rel.as_posix(), "kind": kind, "origin": origin, "licence": licence,
            "licence_file": licence_file, "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fortunes-zh", required=True, type=Path, help="fortunes-zh 2.98's usr/share/games/fortunes/chinese")
    args = ap.parse_args()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    py = f"CPython {platform.python_version()} Lib/"
    entries = []
    for name in STDLIB_CODE:
        entries.append(_freeze(name, (stdlib / name).read_bytes(), "code", py + name, "PSF-2.0", "LICENSE-PSF.txt"))
    for name in STDLIB_PROSE:
        entries.append(_freeze(name, (stdlib / name).read_bytes(), "prose_en", py + name, "PSF-2.0",
                               "LICENSE-PSF.txt"))
    for lic in LICENCE_TEXTS:
        entries.append(_freeze(f"common-licenses/{lic}", Path("/usr/share/common-licenses", lic).read_bytes(),
                               "prose_en", f"Debian base-files /usr/share/common-licenses/{lic}",
                               "verbatim copying permitted (the text's own notice)", f"prose_en/common-licenses__{lic}.xz"))
    entries.append(_freeze("fortunes-zh/chinese", args.fortunes_zh.read_bytes(), "prose_zh",
                           "Debian package fortunes-zh 2.98, /usr/share/games/fortunes/chinese", "GPL-3.0-or-later",
                           "prose_en/common-licenses__GPL-3.xz"))
    (DATA / "LICENSE-PSF.txt").write_bytes((stdlib / "LICENSE.txt").read_bytes())
    manifest = {"about": "Frozen real-text sources of tasks/realtext; sha256 and size are of the uncompressed bytes. "
                         "Written by scripts/freeze_realtext.py.", "sources": entries}
    (DATA / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(entries)} sources, {sum(p.stat().st_size for p in DATA.rglob('*.xz'))} compressed bytes in {DATA}")


if __name__ == "__main__":
    main()
