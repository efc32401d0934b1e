"""The ``cocolens`` command. Imports nothing heavy at start-up: ``cocolens --help`` stays instant.

Exit codes: 0 success, 2 bad input (one line on stderr naming file, record and field; the
project is left as it was), 3 the project is busy with another writer.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import metrics.passive_openmp  # noqa: F401  (before any command loads torch or faiss: OpenMP threads sleep, not spin)

DEFAULT_PORT = 8501
# True when this process is the command (run), not a caller of main that goes on (tests).
_whole_process = False


def _progress_printer() -> Callable[[str, int, int], None]:
    """Progress on stderr: tqdm bars on a terminal, a line every few seconds in a log (store/progress_report.py)."""
    from store.progress_report import ProgressReport

    return ProgressReport()


def _start_image_pass_early(args: argparse.Namespace) -> None:
    """Worker processes, and the pass's records guessed from the raw JSON, before pandas is imported."""
    from store.early_image_pass import start_image_pass_early

    # fork: as the whole process, nothing else runs yet (metrics.pipeline._early_start_method)
    start_image_pass_early(
        args.images, args.annotations, args.project, args.engine, args.workers, fork=_whole_process
    )


def cmd_import_coco(args: argparse.Namespace) -> int:
    from metrics.gc_tuning import long_lived_imports

    try:
        with long_lived_imports(_whole_process):  # numpy, OpenCV, pandas...: alive to the end
            _start_image_pass_early(args)
            from store.coco_import import import_coco

        summary = import_coco(
            args.images,
            args.annotations,
            args.project,
            dataset=args.dataset,
            workers=args.workers,
            progress=None if args.quiet else _progress_printer(),
            engine=args.engine,
            prewarm=not args.embeddings,
        )
    finally:
        from metrics import pipeline

        pipeline.discard_early_workers()
    if args.embeddings:
        from store import page_summaries
        from store.embedding_store import compute_dataset_embeddings
        from store.project import Project

        project = Project(args.project)
        with project.writing():
            summary["embeddings"] = compute_dataset_embeddings(
                project, summary["dataset"], progress=None if args.quiet else _progress_printer()
            )
            from store.label_issues import compute_label_issues

            summary["label_issues"] = compute_label_issues(project, summary["dataset"])
            page_summaries.prewarm(project.root)  # after the embedding metrics, not before
    print(json.dumps(summary))
    return 0


def cmd_import_predictions(args: argparse.Namespace) -> int:
    from store.predictions_import import import_predictions

    summary = import_predictions(
        args.file,
        args.project,
        model=args.model,
        dataset=args.dataset,
        progress=None if args.quiet else _progress_printer(),
    )
    if not args.no_label_issues:
        from store.label_issues import rescore_after_model

        summary["label_issues"] = rescore_after_model(args.project, summary["dataset"])
    print(json.dumps(summary))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from store.project import Project
    from store.report import build_report

    if not Project(args.project).exists():
        from store.errors import InputError

        raise InputError(args.project, "not a cocolens project (no project.json)", field="--project")
    report = build_report(args.project)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, counts in report["datasets"].items():
            print(
                f"{name}: {counts['images']} images, {counts['objects']} objects, "
                f"{counts['categories_used']}/{counts['categories']} categories used, "
                f"{counts['missing_images']} missing, {counts['unreadable_images']} unreadable"
            )
        for issue, count in report["issues"].items():
            print(f"  {issue}: {count}")
    return 0


def cmd_export_csv(args: argparse.Namespace) -> int:
    from store.csv_export import export_csv
    from store.project import check_export_file

    check_export_file(args.project, args.out)

    rows = export_csv(args.project, args.out, args.level, dataset=args.dataset)
    print(json.dumps({"out": str(args.out), "rows": rows}))
    return 0


def cmd_export_parquet(args: argparse.Namespace) -> int:
    from store.parquet_export import export_parquet

    tables = export_parquet(args.project, args.out)
    print(json.dumps({"out": str(args.out), "rows": {name: t["rows"] for name, t in tables.items()}}))
    return 0


def cmd_export_coco(args: argparse.Namespace) -> int:
    from store.coco_export import export_coco
    from store.project import check_export_file

    check_export_file(args.project, args.out)

    summary = export_coco(
        args.project,
        args.out,
        dataset=args.dataset,
        where=args.where,
        max_side=args.max_side,
        with_metrics=args.with_metrics,
        apply_fixes=args.apply_fixes,
    )
    print(json.dumps(summary))
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    """`cocolens tag` / `untag`: prints how many images or objects it changed."""
    from store.tags import tag_where

    add = args.command == "tag"
    changed, matched = tag_where(
        args.project, args.name, args.where, [args.dataset] if args.dataset else None, args.level, add
    )
    items = f"{args.level}s" if changed != 1 else args.level
    if add:
        print(
            f"tagged {changed:,} {items} with '{args.name}' ({matched - changed:,} of {matched:,} matching already had it)"
        )
    else:
        print(f"untagged {changed:,} {items} ('{args.name}' removed; {matched:,} matching)")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from store.metrics_update import update_metrics

    summary = update_metrics(
        args.project,
        add=args.add or [],
        workers=args.workers,
        embeddings=args.embeddings,
        progress=_progress_printer() if args.embeddings else None,
        engine=args.engine,
        label_issues=not args.no_label_issues,
    )
    print(json.dumps(summary))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from models.job_run import train_foreground

    overrides: dict[str, Any] = {"weights": args.weights} if args.weights is not None else {}
    if args.folds is not None:
        overrides["folds"] = args.folds
    summary = train_foreground(
        args.project, args.train, args.val, config_path=args.config, name=args.name, **overrides
    )
    print(json.dumps(summary))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from models.predict import predict_and_import

    dataset = args.dataset
    imported = None
    if args.images:
        from models.image_folder import ensure_folder_dataset

        dataset = dataset or Path(args.images).resolve().name
        imported = ensure_folder_dataset(args.project, args.checkpoint, args.images, dataset)
    elif not dataset:
        from store.errors import InputError

        raise InputError(
            str(args.project), "name the dataset to predict (or give --images FOLDER)", field="--dataset"
        )
    if args.tile_size is not None and args.tile_size != 0 and args.tile_size < 32:
        from store.errors import InputError

        raise InputError(
            "command line", f"must be 0 (off) or >= 32 pixels, got {args.tile_size}", field="--tile-size"
        )
    if args.tile_overlap is not None and not 0 <= args.tile_overlap < 0.9:
        from store.errors import InputError

        raise InputError(
            "command line", f"must be >= 0 and < 0.9, got {args.tile_overlap}", field="--tile-overlap"
        )
    summary = predict_and_import(
        args.project,
        args.checkpoint,
        dataset,
        args.model,
        tile_size=args.tile_size,
        tile_overlap=args.tile_overlap,
    )
    if imported is not None:
        summary["imported_images"] = {k: imported.get(k) for k in ("dataset", "images") if k in imported}
    print(json.dumps(summary))
    return 0


def _streamlit_args(project: str | None, port: int, address: str) -> list[str]:
    app = Path(__file__).resolve().parent / "app.py"
    args = [
        "run",
        str(app),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    if project:
        args += ["--", "--project", str(Path(project).resolve())]
    return args


def _streamlit_command(project: str | None, port: int, address: str) -> list[str]:
    """The equivalent stand-alone command (an argument list: no shell, no string built from input)."""
    return [sys.executable, "-m", "streamlit", *_streamlit_args(project, port, address)]


def cmd_visualise(args: argparse.Namespace) -> int:
    """Serve the app in this process.

    Streamlit treats a ``pages/`` folder beside the entry script as old-style pages until the
    entry script has called ``st.navigation`` once; a deep link opened first on a fresh server
    would then run a page without ``app.py``. Our pages folder is navigation-only, so say so
    before the server starts.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli as streamlit_cli

    PagesManager.uses_pages_directory = False
    print(f"cocolens: open http://{args.address}:{args.port}", file=sys.stderr)
    try:
        streamlit_cli.main(_streamlit_args(args.project, args.port, args.address), prog_name="streamlit")
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from store.demo import build_demo_project

    project = build_demo_project(args.project, progress=_progress_printer())
    print(f"cocolens: demo project at {project}", file=sys.stderr)
    if args.no_open:
        return 0
    args.project = str(project)
    return cmd_visualise(args)


Subparsers = Any  # argparse's _SubParsersAction (private)


def _project_command(
    sub: Subparsers, name: str, func: Callable[[argparse.Namespace], int], **parser_options: Any
) -> argparse.ArgumentParser:
    """A subcommand that works on an existing project: every one takes --project and runs `func`."""
    command = sub.add_parser(name, **parser_options)
    command.add_argument("--project", required=True)
    command.set_defaults(func=func)
    return command


def _export_command(
    sub: Subparsers,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    out_help: str | None = None,
) -> argparse.ArgumentParser:
    """An ``export`` subcommand: each writes what --project holds to --out."""
    command = _project_command(sub, name, func, help=help)
    command.add_argument("--out", required=True, help=out_help)
    return command


def _add_engine_option(command: argparse.ArgumentParser, help: str) -> None:
    """--engine: where the per-image pass runs (the choices are metrics.engines.ENGINES)."""
    from metrics.engines import ENGINES

    command.add_argument("--engine", choices=list(ENGINES), help=help)


def _add_server_options(command: argparse.ArgumentParser, project_default: str | None = None) -> None:
    """--project, --port and --address: visualise and demo serve the app the same way."""
    command.add_argument("--project", default=project_default, help="project folder")
    command.add_argument("--port", type=int, default=DEFAULT_PORT)
    command.add_argument(
        "--address", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cocolens", description="Data-centric explorer for COCO datasets.")
    sub = parser.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import", help="import a COCO dataset or a model's predictions")
    imp_sub = imp.add_subparsers(dest="what", required=True)
    coco = imp_sub.add_parser("coco", help="import images + COCO annotations as a dataset")
    coco.add_argument("--images", required=True, help="folder the file_name entries are relative to")
    coco.add_argument("--annotations", required=True, help="COCO annotations JSON")
    coco.add_argument("--project", required=True, help="project folder (created if absent)")
    coco.add_argument("--dataset", help="dataset name (default: the annotations file name)")
    coco.add_argument("--workers", type=int, default=2, help="processes for the image pass (default 2)")
    _add_engine_option(
        coco,
        "image pass engine (default: project.json settings.engine, else local); "
        "ray: Ray Data on RAY_ADDRESS or a local Ray with --workers CPUs; --images may be s3://...",
    )
    coco.add_argument("--quiet", action="store_true", help="no progress bar")
    coco.add_argument(
        "--embeddings",
        action="store_true",
        help="also embed images and object crops (annotation quality, label suggestions, similarity search)",
    )
    coco.set_defaults(func=cmd_import_coco)
    preds = _project_command(
        imp_sub, "predictions", cmd_import_predictions, help="import COCO results JSON as a model"
    )
    preds.add_argument("file", help="COCO results JSON (list of {image_id, category_id, score, bbox, ...})")
    preds.add_argument("--model", required=True, help="model name")
    preds.add_argument("--dataset", help="dataset the predictions are for (default: the only one)")
    preds.add_argument("--quiet", action="store_true")
    preds.add_argument(
        "--no-label-issues",
        action="store_true",
        help="skip re-scoring the dataset's labels with this model (cocolens metrics does it later)",
    )

    rep = _project_command(sub, "report", cmd_report, help="summary of a project")
    rep.add_argument("--json", action="store_true", help="machine-readable JSON")

    exp = sub.add_parser("export", help="export COCO or CSV")
    exp_sub = exp.add_subparsers(dest="what", required=True)
    ecoco = _export_command(
        exp_sub, "coco", cmd_export_coco, "export (a filtered subset of) a dataset as COCO JSON"
    )
    ecoco.add_argument("--dataset")
    ecoco.add_argument(
        "--where",
        help="SQL condition over image/object columns, metrics and has_tag('TAG'), "
        "e.g. \"brightness < 0.3 AND NOT has_tag('reviewed')\"",
    )
    ecoco.add_argument("--max-side", type=int, help="downscale images so the longest side is at most PX")
    ecoco.add_argument("--with-metrics", action="store_true", help="add metric values as attributes")
    ecoco.add_argument(
        "--apply-fixes",
        action="store_true",
        help="apply the label-error fixes accepted on the Label errors page (ids kept, added boxes get new ids)",
    )
    ecsv = _export_command(
        exp_sub, "csv", cmd_export_csv, "one row per image / object / prediction with every metric"
    )
    ecsv.add_argument("--level", required=True, choices=["image", "object", "prediction"])
    ecsv.add_argument("--dataset")
    _export_command(
        exp_sub,
        "parquet",
        cmd_export_parquet,
        "every table as one Parquet file (DuckDB, Spark, pandas)",
        out_help="folder for the .parquet files (outside the project)",
    )

    met = _project_command(
        sub, "metrics", cmd_metrics, help="compute new or changed metrics (custom ones with --add)"
    )
    met.add_argument(
        "--add", action="append", help="module path or .py file with custom metrics (repeatable)"
    )
    met.add_argument("--workers", type=int, default=2)
    met.add_argument(
        "--embeddings", action="store_true", help="also compute embeddings and annotation quality"
    )
    met.add_argument(
        "--no-label-issues",
        action="store_true",
        help="skip the label-error pass (label_issue, missing_label; skipped anyway when nothing changed)",
    )
    _add_engine_option(
        met, "where the image pass and --embeddings run (default: project setting, else local)"
    )

    for command in ("tag", "untag"):
        tag = _project_command(
            sub,
            command,
            cmd_tag,
            help=f"{'add a tag to' if command == 'tag' else 'remove a tag from'} the images/objects matching --where",
        )
        tag.add_argument("--name", required=True, help="the tag")
        tag.add_argument("--where", required=True, help="SQL condition as for export coco --where")
        tag.add_argument("--dataset", help="only this dataset")
        tag.add_argument(
            "--level", choices=["image", "object"], default="image", help="tag images (default) or objects"
        )

    tr = _project_command(sub, "train", cmd_train, help="train Mask R-CNN in the foreground")
    tr.add_argument("--train", required=True, help="training dataset name")
    tr.add_argument("--val", required=True, help="validation dataset name")
    tr.add_argument("--config", help="TOML config (defaults: models/default_config.toml)")
    tr.add_argument(
        "--folds",
        type=int,
        help="K >= 2: K models on K-1 folds each; each train image predicted by the model that never saw "
        "it, imported as one model NAME-oofK on the train dataset (for label errors)",
    )
    tr.add_argument("--name", help="model name (default train-<job id>; with --folds K, NAME-oofK)")
    tr.add_argument(
        "--weights", help="fine-tune from a torchvision weights name or a local .pth (overrides the config)"
    )

    pr = _project_command(
        sub, "predict", cmd_predict, help="run a checkpoint on a dataset and import its predictions"
    )
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("--dataset", help="dataset to predict (with --images: the name the folder gets)")
    pr.add_argument(
        "--tile-size",
        type=int,
        help="predict with sliding tiles of N original pixels plus the full image (0 = off; default: "
        "as the checkpoint was trained)",
    )
    pr.add_argument("--tile-overlap", type=float, help="fraction of a tile neighbours share (default 0.2)")
    pr.add_argument(
        "--images",
        help="a folder of images that is no dataset yet: imported first (images only), then predicted",
    )
    pr.add_argument("--model", required=True)

    for name in ("visualise", "visualize"):
        vis = sub.add_parser(name, help="open the app" if name == "visualise" else argparse.SUPPRESS)
        _add_server_options(vis)
        vis.set_defaults(func=cmd_visualise)

    demo = sub.add_parser("demo", help="build a generated demo project and open the app")
    _add_server_options(demo, project_default=os.path.join(os.getcwd(), "demo_project"))
    demo.add_argument("--no-open", action="store_true", help="build only")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from store.errors import InputError, ProjectBusyError

    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"cocolens: error: {exc}", file=sys.stderr)
        return 2
    except ProjectBusyError as exc:
        print(f"cocolens: error: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:
        from store.errors import damaged_file_error, disk_full_error

        # a project file cut short (which, and how to rebuild it), or a full disk: one line, exit 2
        damaged = damaged_file_error(exc) or disk_full_error(exc)
        if damaged is None:
            raise
        print(f"cocolens: error: {damaged}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cocolens: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def run() -> None:
    """The ``cocolens`` command: :func:`main` on this process's arguments, then exit without a last sweep.

    Every object still alive is frozen out of the garbage collector first: the interpreter's final
    collection otherwise traverses everything pandas, pyarrow and DuckDB built, ~0.09 s of a 1.6 s
    photo import (2 vCPU, bench/pixel_vs_cleanvision.py). The memory goes back with the process.
    """
    global _whole_process
    _whole_process = True
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
