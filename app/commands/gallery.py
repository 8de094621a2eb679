"""`main.py gallery ACTION`: list, rename, merge, remove identities or samples; export/import."""
from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from pathlib import Path

from engines.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("gallery", parents=[_common_options(None, False)])
    # the options may also follow the action; there they must not reset what came before it
    common = _common_options(argparse.SUPPRESS, argparse.SUPPRESS)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = actions.add_parser("list", parents=[common], help="identities with sample counts")
    a.add_argument("--samples", action="store_true", help="also list every sample with its id")
    a = actions.add_parser("rename", parents=[common], help="rename an identity")
    a.add_argument("old")
    a.add_argument("new")
    a = actions.add_parser("merge", parents=[common], help="move SRC's samples into DST and remove SRC")
    a.add_argument("src")
    a.add_argument("dst")
    a = actions.add_parser("remove", parents=[common], help="remove an identity and its samples")
    a.add_argument("name")
    a = actions.add_parser("remove-sample", parents=[common], help="remove one sample (ids: list --samples)")
    a.add_argument("sample_id", type=int, metavar="ID")
    a = actions.add_parser("export", parents=[common], help="write the whole gallery to one file")
    a.add_argument("file", type=Path)
    a.add_argument("--force", action="store_true", help="replace FILE if it exists")
    a = actions.add_parser("import", parents=[common], help="add the identities of an exported file")
    a.add_argument("file", type=Path)
    clash = a.add_mutually_exclusive_group()
    clash.add_argument("--merge", action="store_true", help="join samples to identities with the same name")
    clash.add_argument("--rename", action="store_true", help="import clashing names as 'Name (2)'")
    a.add_argument("--dry-run", action="store_true", help="check the file and say what an import would do; write nothing")
    a.add_argument("--skip-rejected", action="store_true",
                   help="import the samples that pass the checks and leave out the others (listed)")
    p.set_defaults(func=run)


def _common_options(gallery_default, json_default) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--gallery", type=Path, default=gallery_default,
                        help="gallery folder (default: the user's gallery)")
    common.add_argument("--json", action="store_true", default=json_default, help="print one JSON object")
    return common


def run(args) -> int:
    from app.gallery.store import DB_NAME, Gallery
    from app.paths import default_gallery_dir

    folder = args.gallery if args.gallery is not None else default_gallery_dir()
    if args.action != "import" and not (folder / DB_NAME).exists():
        if args.action == "list":
            return _print(args, {"gallery": str(folder), "identities": [], "models": {}},
                          [f"no gallery at {folder} (enrol someone with `main.py enroll NAME PHOTO`)"])
        raise UserError(f"no gallery at {folder}: enrol someone first (`main.py enroll NAME PHOTO`) or give --gallery")
    with Gallery(folder) as gallery:
        return _ACTIONS[args.action](args, gallery)


def _list(args, gallery) -> int:
    identities = gallery.identities()
    out = {
        "gallery": str(gallery.folder),
        "identities": [{"name": i.name, "samples": i.sample_count, "created": _iso(i.created),
                        "updated": _iso(i.updated)} for i in identities],
        "models": gallery.model_ids(),
    }
    lines = [f"{gallery.folder}: {len(identities)} identities"]
    lines += [f"  {_shown(i.name)}  ({i.sample_count} sample{'s' if i.sample_count != 1 else ''}, updated {_iso(i.updated)})"
              for i in identities]
    if args.samples:
        samples = gallery.samples()
        out["samples"] = [{"id": s.id, "name": s.name, "quality": s.quality, "source": s.source,
                           "created": _iso(s.created), "models": s.model_ids, "crop": s.has_crop} for s in samples]
        lines.append("samples:")
        lines += [f"  {s.id:>5}  {_shown(s.name)}  quality {s.quality if s.quality is not None else float('nan'):.2f}  "
                  f"{s.source or '-'}  [{', '.join(s.model_ids)}]" for s in samples]
    lines.append("models: " + (", ".join(f"{m} ({n} samples)" for m, n in out["models"].items()) or "none"))
    return _print(args, out, lines)


def _rename(args, gallery) -> int:
    gallery.rename(args.old, args.new)
    return _print(args, {"renamed": args.old, "to": args.new}, [f"renamed {args.old!r} to {args.new!r}"])


def _merge(args, gallery) -> int:
    moved = gallery.merge(args.src, args.dst)
    return _print(args, {"merged": args.src, "into": args.dst, "samples_moved": moved},
                  [f"merged {args.src!r} into {args.dst!r} ({moved} samples moved)"])


def _remove(args, gallery) -> int:
    count = gallery.remove(args.name)
    return _print(args, {"removed": args.name, "samples": count}, [f"removed {args.name!r} and its {count} samples"])


def _remove_sample(args, gallery) -> int:
    name = gallery.remove_sample(args.sample_id)
    return _print(args, {"removed_sample": args.sample_id, "name": name},
                  [f"removed sample {args.sample_id} of {name!r}"])


def _export(args, gallery) -> int:
    path = gallery.export(args.file, overwrite=args.force)
    count = len(gallery)
    return _print(args, {"exported": str(path), "identities": count},
                  [f"exported {count} identities to {path} (readable by you only)"])


def _import(args, gallery) -> int:
    from app.gallery.transfer import ImportRejected

    on_clash = "merge" if args.merge else "rename" if args.rename else "refuse"
    try:
        report = gallery.import_from(args.file, on_clash=on_clash, dry_run=args.dry_run,
                                     skip_rejected=args.skip_rejected)
    except ImportRejected as exc:
        for r in exc.report.rejected:
            print(f"rejected: {_shown(r.line())}", file=sys.stderr)
        raise
    verb = "would import" if report.dry_run else "imported"
    lines = [f"{verb} {report.samples} samples from {args.file}" + (" (dry run: nothing written)" if report.dry_run else "")]
    lines += [f"  rejected: {_shown(r.line())}" for r in report.rejected]
    lines += [f"  new: {n}" for n in report.added]
    lines += [f"  merged into existing: {n}" for n in report.merged]
    lines += [f"  renamed: {a} -> {b}" for a, b in report.renamed.items()]
    if report.duplicates_skipped:
        lines.append(f"  {report.duplicates_skipped} samples were already there and were skipped")
    return _print(args, {"imported": str(args.file), **report.to_dict()}, lines)


_ACTIONS = {"list": _list, "rename": _rename, "merge": _merge, "remove": _remove,
            "remove-sample": _remove_sample, "export": _export, "import": _import}


def _print(args, obj: dict, lines: list[str]) -> int:
    if args.json:
        print(json.dumps(obj))
    else:
        print("\n".join(lines))
    return 0


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _shown(text: str) -> str:
    """`text` for a terminal: control characters (an ANSI escape in a name) shown escaped, not obeyed."""
    if any(unicodedata.category(c) == "Cc" for c in text):
        return "".join(c.encode("unicode_escape").decode() if unicodedata.category(c) == "Cc" else c for c in text)
    return text
