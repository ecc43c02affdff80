"""The `bertpipe` command line: predictions with a trained model, and checks of params."""

from __future__ import annotations

import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from bertpipe.errors import UserError

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(requested: bool) -> None:
    if requested:
        # the installed distribution's metadata, so the answer is the version pip installed
        typer.echo(f"bertpipe {metadata.version('bertpipe')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """bertpipe: fine-tune BERT-family models on your own text with DVC.

    Train with `dvc repro`; use these commands around it.
    """


def _fail(error: UserError, code: int = 1) -> None:
    if os.environ.get("BERTPIPE_DEBUG") == "1":
        raise error
    typer.echo(f"error: {' '.join(str(error).split())}", err=True)
    raise typer.Exit(code)


OUTPUT_FORMATS = (".csv", ".jsonl", ".parquet")


@app.command()
def predict(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to classify; '-' or none reads stdin.")
    ] = None,
    model: Annotated[Path, typer.Option(help="A trained model folder.")] = Path("models/model"),
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="A CSV, TSV, JSONL or Parquet file.")
    ] = None,
    text_column: Annotated[
        list[str] | None,
        typer.Option(help="Text column(s) of --input; default: the training's data.text_column."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the input rows plus predictions (.csv, .jsonl, "
            ".parquet) instead of JSON lines on stdout.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per batch.")] = 32,
    encoding: Annotated[str, typer.Option(help="Encoding of --input.")] = "utf-8",
) -> None:
    """Predict labels for new texts: one JSON line per text, or a file with --output.

    \b
    bertpipe predict "pt c/o chest pain" "headache and blurred vision"
    cat notes.txt | bertpipe predict
    bertpipe predict --input new.csv --text-column text --output preds.csv
    """
    try:
        _predict(texts or [], model, input, text_column, output, batch_size, encoding)
    except UserError as error:
        _fail(error)


def _predict(
    texts: list[str],
    model_dir: Path,
    input_path: Path | None,
    text_columns: list[str] | None,
    output: Path | None,
    batch_size: int,
    encoding: str,
) -> None:
    import pandas as pd

    from bertpipe.artifacts import read_training_params
    from bertpipe.files import atomic_path
    from bertpipe.predict import Predictor
    from bertpipe.tables import read_table

    if output is not None and output.suffix.lower() not in OUTPUT_FORMATS:
        raise UserError(f"--output: use one of {', '.join(OUTPUT_FORMATS)}, not '{output.suffix}'")
    if input_path is not None and texts:
        raise UserError("give texts as arguments or --input, not both")
    frame: pd.DataFrame | None = None
    if input_path is not None:
        frame = read_table(input_path, encoding=encoding).frame
        if text_columns is None:
            configured = read_training_params(model_dir).get("data", {}).get("text_column", "text")
            text_columns = [configured] if isinstance(configured, str) else list(configured)
        missing = [column for column in text_columns if column not in frame.columns]
        if missing:
            raise UserError(
                f"{input_path}: missing column(s) {', '.join(missing)}; the file has: "
                f"{', '.join(map(str, frame.columns))}; pick one with --text-column"
            )
        columns = [frame[column].fillna("").astype(str) for column in text_columns]
        inputs: list = (
            columns[0].tolist()
            if len(columns) == 1
            else [list(parts) for parts in zip(*columns, strict=True)]
        )
    else:
        if not texts or texts == ["-"]:
            if sys.stdin.isatty():
                raise UserError("no texts: pass them as arguments, with --input, or on stdin")
            texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        inputs = texts
        frame = pd.DataFrame({"text": texts})
    predictor = Predictor.load(model_dir)
    results = predictor.predict(inputs, batch_size, progress=output is not None)

    if output is None:
        for text, result in zip(inputs, results, strict=True):
            typer.echo(json.dumps({"text": text, **result}, ensure_ascii=False))
        return
    frame = frame.copy()
    frame["label"] = [
        "|".join(r["label"]) if isinstance(r["label"], list) else r["label"] for r in results
    ]
    for name in predictor.label_names:
        frame[f"score_{name}"] = [r["scores"][name] for r in results]
    with atomic_path(output) as tmp:
        suffix = output.suffix.lower()
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        elif suffix == ".jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_parquet(tmp, index=False)
    typer.echo(f"wrote {len(frame)} predictions to {output}", err=True)


@app.command("check-metrics")
def check_metrics(
    baseline: Annotated[
        str, typer.Option(help="Git revision whose committed metrics are the reference.")
    ] = "HEAD",
    candidate: Annotated[
        str, typer.Option(help="Git revision to judge; default: the workspace.")
    ] = "workspace",
    tolerance: Annotated[
        list[str] | None,
        typer.Option(
            help="METRIC=DROP, the largest tolerated drop; repeatable. Overrides and "
            "extends the gate.tolerance section of params.yaml."
        ),
    ] = None,
    confidence: Annotated[
        float | None, typer.Option(help="Bootstrap confidence; default gate.confidence.")
    ] = None,
    n_bootstrap: Annotated[
        int | None, typer.Option(help="Bootstrap resamples; default gate.n_bootstrap.")
    ] = None,
    md: Annotated[
        Path | None, typer.Option(help="Also write the markdown table here, for a CI comment.")
    ] = None,
    metrics_file: Annotated[str, typer.Option(help="Metrics file in each revision.")] = (
        "metrics.json"
    ),
    predictions_file: Annotated[
        str, typer.Option(help="Per-example predictions in each revision.")
    ] = "eval/predictions.csv",
    params_file: Annotated[Path, typer.Option(help="Where the gate: section is.")] = Path(
        "params.yaml"
    ),
    repo: Annotated[Path, typer.Option(help="The git repository.")] = Path("."),
) -> None:
    """Fail (exit 1) when a metric dropped beyond its tolerance and the drop is real.

    \b
    The decision uses a paired bootstrap over the per-example test predictions. Exit codes:
    0 no regression, 1 regression, 2 unusable input (a revision without metrics, missing files).
    """
    from bertpipe import gate

    try:
        overrides = dict(_parse_tolerance(item) for item in tolerance or [])
        tolerances, settings = gate.tolerances_from(repo / params_file, overrides)
        sides = [
            gate.load_side(rev, repo, metrics_file, predictions_file, str(params_file))
            for rev in (baseline, candidate)
        ]
        result = gate.decide(
            sides[0],
            sides[1],
            tolerances,
            confidence if confidence is not None else settings.confidence,
            n_bootstrap if n_bootstrap is not None else settings.n_bootstrap,
        )
    except gate.UnusableInput as error:
        _fail(error, gate.EXIT_UNUSABLE)
        return
    except UserError as error:
        _fail(error, gate.EXIT_UNUSABLE)
        return
    table = result.markdown(baseline, candidate)
    typer.echo(table)
    if md is not None:
        from bertpipe.files import atomic_path

        with atomic_path(md) as tmp:
            tmp.write_text(table, encoding="utf-8")
    raise typer.Exit(gate.EXIT_REGRESSION if result.regressed else gate.EXIT_OK)


def _parse_tolerance(item: str) -> tuple[str, float]:
    name, _, value = item.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise UserError(f"--tolerance: expected METRIC=NUMBER, got '{item}'") from None


@app.command("download-model")
def download_model(
    hub_id: Annotated[str, typer.Argument(help="A hub id, e.g. emilyalsentzer/Bio_ClinicalBERT.")],
    to: Annotated[Path, typer.Option(help="A new folder for the model, e.g. models/base/NAME.")],
    revision: Annotated[
        str | None, typer.Option(help="A branch, tag or commit; default: the main branch.")
    ] = None,
) -> None:
    """Fetch a hub model once, recording its revision and file hashes in bertpipe-source.json.

    \b
    bertpipe download-model emilyalsentzer/Bio_ClinicalBERT --to models/base/clinicalbert
    dvc add models/base/clinicalbert     # then set model: models/base/clinicalbert
    """
    from bertpipe.hub import download_model as download

    try:
        source = download(hub_id, to, revision)
    except UserError as error:
        _fail(error)
        return
    typer.echo(
        f"downloaded {hub_id} at {source['resolved_revision']} to {to} "
        f"({len(source['files'])} files); next: dvc add {to}",
        err=True,
    )


@app.command("params")
def show_params(
    path: Annotated[Path, typer.Argument(help="The params file.")] = Path("params.yaml"),
) -> None:
    """Check params.yaml against the schema and print the resolved, typed values as JSON."""
    from bertpipe.params import load_params

    try:
        typer.echo(json.dumps(load_params(path).model_dump(mode="json"), indent=2))
    except UserError as error:
        _fail(error)


if __name__ == "__main__":
    app()
